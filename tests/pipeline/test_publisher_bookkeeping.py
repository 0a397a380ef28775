"""The publish stage as bookkeeping, in this process: no workers, a real ledger, ring and channels.

Frames go in as the embedder would send them; what is checked is what the publisher owes the run:
events to every sink in one run-wide order, each frame to every observer before its events, slots
handed back, frames lost and duplicated counted, every sink's figures in the stats (and carried
over by a restarted publisher), and tracks ended at a source's end.
"""

from __future__ import annotations

import multiprocessing as mp
import uuid

import numpy as np
import pytest

from stream.config.schema import AppConfig
from stream.events.schema import Event
from stream.events.sinks import SinkStats
from stream.faces import Faces
from stream.pipeline.ledger import RunLedger
from stream.pipeline.messages import EndOfSource, FacesMsg, FrameMsg, ResultMsg
from stream.pipeline.observers import FrameView, Observer
from stream.pipeline.publishing import Publisher
from stream.pipeline.queues import Channel
from stream.pipeline.shm import FrameRing, RingLayout
from stream.pipeline.specs import PublishSpec
from stream.recognize.gallery import Gallery
from stream.recognize.stage import RecognitionStage
from stream.recognize.voting import VotingConfig

SLOTS = 4


class ListSink:
    """A sink that keeps what it gets; ``lose`` makes it count every other event as dropped."""

    def __init__(self, lose: bool = False) -> None:
        self.events: list[dict] = []
        self.lose = lose
        self.dropped = 0
        self.closed = False

    def write(self, event: Event) -> None:
        if self.lose and len(self.events) % 2:
            self.dropped += 1
        self.events.append(event.model_dump())

    def stats(self) -> SinkStats:
        return SinkStats(len(self.events) - self.dropped, self.dropped, 0)

    def close(self) -> None:
        self.closed = True


class Recorder(Observer):
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink
        self.frames: list[tuple[int, list, int]] = []  # (frame, tracks, events out before it)
        self.ended: list[str] = []
        self.seen: list[str] = []
        self.closed = False

    def on_frame(self, view: FrameView) -> None:
        assert view.image().shape == (48, 64, 3) and len(view.crops()) == len(view.embed_rows)
        self.frames.append((view.frame.index, view.outcome.tracks, len(self.sink.events)))

    def on_event(self, event: Event) -> None:
        self.seen.append(event.type)

    def end_source(self, source: str) -> None:
        self.ended.append(source)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def run(default_model, tmp_path):
    ctx = mp.get_context("spawn")
    manifest = default_model.manifest
    layout = RingLayout(f"fs-test-{uuid.uuid4().hex[:8]}", SLOTS, 48, 64, 4, manifest.input.height,
                        manifest.input.width)
    ring = FrameRing.create(layout)
    ring.crops(0)[...] = np.random.default_rng(0).integers(0, 255, ring.crops(0).shape, np.uint8)  # sharp
    for slot in range(1, SLOTS):
        ring.crops(slot)[...] = ring.crops(0)
    ledger = RunLedger.create(ctx, {"cam": SLOTS}, ["publish"], tmp_path / "journal")
    spec = PublishSpec(0, AppConfig(), manifest, {"cam": layout}, None, {"cam": Channel(ctx)},
                       {"cam": Channel(ctx)}, None)
    ann = np.random.default_rng(1).normal(0, 0.1, (1, 128)).astype(np.float32)
    gallery = Gallery.new(manifest)
    gallery.add("ann", ann)

    def publisher(*sinks: ListSink, observers=()) -> Publisher:
        stages = {"cam": RecognitionStage(manifest, gallery, VotingConfig(min_votes=2),
                                          new_track_id=lambda: int(ledger.sources["cam"].add("next_track_id")))}
        return Publisher(spec, {"cam": ring}, ledger, stages,
                         {f"s{i}": s for i, s in enumerate(sinks)}, list(observers))

    def frame(index: int, track_id: int = 5, seq: int = -1) -> ResultMsg:
        slot = index % SLOTS
        ledger.sources["cam"].holders[slot] = index
        faces = Faces(np.array([[10, 10, 40, 40]], np.float32), [0.9], np.full((1, 6, 2), 20, np.float32),
                      track_id=[track_id])
        msg = FrameMsg("cam", slot, index, index / 25, 0.0, 48, 64, seq=seq)
        return ResultMsg(FacesMsg(msg, faces, np.array([0])), ann + 0.01)

    yield publisher, frame, ledger, spec
    ring.close()
    ring.unlink()


def _drain(channel: Channel) -> list:
    out = []
    while not channel.empty():
        out.append(channel.get(timeout=1))
    return out


def test_events_reach_every_sink_in_one_run_wide_order_after_the_observers_saw_the_frame(run):
    publisher, frame, ledger, spec = run
    a, b = ListSink(), ListSink()
    seen = Recorder(a)
    pub = publisher(a, b, observers=[seen])
    for i in range(4):
        pub.handle(frame(i))
    pub.end_source(EndOfSource("cam", 4))
    pub.close()
    kinds = [(e["type"], e["track_id"], e["identity"]) for e in a.events]
    assert kinds == [("track_started", 1, None), ("identity", 1, "ann"), ("track_ended", 1, "ann")]
    assert a.events == b.events and [e["seq"] for e in a.events] == [1, 2, 3]
    # each frame went to the observers with its ids and names, before that frame's events went out
    assert seen.frames == [(0, [(1, None)], 0), (1, [(1, "ann")], 1), (2, [(1, "ann")], 2), (3, [(1, "ann")], 2)]
    assert seen.seen == ["track_started", "identity", "track_ended"]
    assert seen.ended == ["cam"] and seen.closed and a.closed and b.closed
    # the detect worker heard that track 5 turned confident; every slot went back to the reader
    statuses = [(s.track_id, s.confident) for s in _drain(spec.feedback["cam"])]
    assert statuses == [(5, False), (5, True)]
    assert sorted(_drain(spec.free_slots["cam"])) == [0, 1, 2, 3]
    assert int(ledger.run["events"]) == 3 and int(ledger.sources["cam"]["frames"]) == 4


def test_frames_lost_on_the_way_and_frames_sent_twice_are_counted_not_published(run):
    publisher, frame, *_ = run
    seen = Recorder(ListSink())
    pub = publisher(seen.sink, observers=[seen])
    pub.handle(frame(0, seq=0))
    pub.handle(frame(3, seq=3))  # seq 1 and 2 never came
    pub.handle(frame(3, seq=3))  # a reader killed right after sending sends it again
    summary = pub.summary()
    pub.close()
    assert [f[0] for f in seen.frames] == [0, 3]
    assert summary["per_source"]["cam"]["lost"] == 2 and summary["per_source"]["cam"]["lost_frames"] == [[1, 2]]
    assert summary["per_source"]["cam"]["duplicates"] == 1


def test_every_sinks_figures_reach_the_heartbeat_and_a_restarted_publisher_goes_on_from_them(run):
    publisher, frame, *_ = run
    lossy = ListSink(lose=True)
    pub = publisher(ListSink(), lossy)
    for i in range(3):
        pub.handle(frame(i))
    pub.last_heartbeat = 0.0
    pub.maybe_heartbeat()
    heartbeat = lossy.events[-1]
    assert heartbeat["type"] == "heartbeat"
    # the heartbeat's figures were taken before it went out: two events, one lost
    assert heartbeat["stats"]["sinks"]["s1"] == {"delivered": 1, "dropped": 1, "queued": 0}
    first_seq = lossy.events[-1]["seq"]
    # Killed here (no close): a successor ends the open track and adds its sinks' counts to the run's.
    again = ListSink(lose=True)
    successor = publisher(ListSink(), again)
    ended = again.events[0]
    assert (ended["type"], ended["reason"], ended["seq"]) == ("track_ended", "publisher_restarted", first_seq + 1)
    stats = successor.stats()["sinks"]
    assert stats["s1"]["delivered"] == 2 + 1 and stats["s1"]["dropped"] == 1  # 3 before (one lost) + 1 now
    assert stats["s0"]["delivered"] == 3 + 1
    successor.close()
