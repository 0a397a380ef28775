"""The recorder's queue on a real SQLite store: batched commits, a store that is away and comes back,
drops counted when the queue is full, and a track's mean, best embeddings and thumbnail."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from stream.events.schema import Event
from stream.history.config import HistoryConfig
from stream.history.recorder import HistoryRecorder, OpenTrack, TrackModel
from stream.history.store import HistoryStore

MODEL = TrackModel("m", "space-a", 4)


def identity(track_id: int, ts: float) -> Event:
    return Event(type="identity", source="cam1", track_id=track_id, identity="alice", score=0.9, distance=0.3,
                 frame=track_id, pts=ts - 1000, ts=ts)


def wait_for(check, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_finished_track_is_written_with_its_embeddings_and_thumbnail(tmp_path: Path) -> None:
    url = str(tmp_path / "h.db")
    rec = HistoryRecorder(url, HistoryConfig(url=url, best_crops=2), MODEL, "run-1")
    crop = np.full((32, 32, 3), 128, np.uint8)
    track = rec.open.setdefault(("cam1", 7), OpenTrack())
    for frame, (emb, quality) in enumerate([([1, 0, 0, 0], 1.0), ([0, 1, 0, 0], 3.0), ([0, 0, 1, 0], 2.0)]):
        track.add(frame, frame / 10, 5000 + frame, np.array(emb, np.float32), crop, quality, 0.9, 2)
    rec.write(Event(type="track_ended", source="cam1", track_id=7, identity="alice", score=0.8, frame=3, pts=0.3,
                    ts=5003.0))
    rec.write(Event(type="track_ended", source="cam1", track_id=8, ts=5003.0))  # never embedded: skipped
    rec.close()
    assert rec.stats().as_dict() == {"delivered": 1, "dropped": 0, "queued": 0, "skipped": 1}
    with HistoryStore.open(url) as store:
        (row,) = store.tracks()
        assert (row.identity, row.faces, row.first_frame, row.last_frame) == ("alice", 3, 0, 3)
        assert (row.started_at, row.ended_at) == (5000.0, 5003.0)  # live: the frames' wall clock
        mean, best = store.embeddings(row.id)
        np.testing.assert_allclose(mean, np.array([1, 3, 2, 0]) / 6, rtol=1e-6)  # quality-weighted
        np.testing.assert_array_equal(best, [[0, 1, 0, 0], [0, 0, 1, 0]])  # the two best, best first
        assert store.thumbnail(row.id)[:2] == b"\xff\xd8"  # a JPEG
        (run,) = store.runs()
        assert run.id == "run-1" and run.ended_at is not None


def test_a_file_source_is_timed_by_its_start_and_pts(tmp_path: Path) -> None:
    url = str(tmp_path / "h.db")
    config = HistoryConfig(url=url, file_start="2026-05-01T09:00:00+00:00")
    rec = HistoryRecorder(url, config, MODEL, "run-1", videos={"cam1": "/videos/a.mp4"})
    rec.write(identity(1, 1012.5))
    rec.close()
    with HistoryStore.open(url) as store:
        (decision,) = store.decisions("run-1", "cam1", 1)
    assert decision.ts == 1777626000.0 + 12.5


@pytest.mark.slow  # waits out retries
def test_rows_wait_for_a_store_that_is_away_and_overflow_is_counted(tmp_path: Path) -> None:
    url = str(tmp_path / "later" / "h.db")  # its folder does not exist yet: every commit fails
    rec = HistoryRecorder(url, HistoryConfig(url=url, queue=3, commit_every_s=0.05), MODEL, "run-1")
    for n in range(5):
        rec.write(identity(n, 1000.0 + n))
    # the oldest two gave way; the rest wait through the failing commits
    wait_for(lambda: (rec.stats().delivered, rec.stats().dropped, rec.stats().queued) == (0, 2, 3))
    (tmp_path / "later").mkdir()  # the store comes back: what waited arrives
    wait_for(lambda: rec.stats().delivered == 3)
    rec.close()
    assert rec.stats().as_dict() == {"delivered": 3, "dropped": 2, "queued": 0, "skipped": 0}
    with HistoryStore.open(url) as store:
        assert [store.decisions("run-1", "cam1", n)[0].ts if store.decisions("run-1", "cam1", n) else None
                for n in range(5)] == [None, None, 1002.0, 1003.0, 1004.0]


@pytest.mark.slow  # waits out the drain time
def test_what_is_left_after_the_drain_time_is_counted_dropped(tmp_path: Path) -> None:
    url = str(tmp_path / "never" / "h.db")
    rec = HistoryRecorder(url, HistoryConfig(url=url, drain_s=0.3, commit_every_s=0.05), MODEL, "run-1")
    for n in range(4):
        rec.write(identity(n, 1000.0 + n))
    started = time.monotonic()
    rec.close()
    assert time.monotonic() - started < 5
    assert rec.stats().as_dict() == {"delivered": 0, "dropped": 4, "queued": 0, "skipped": 0}
    rec.write(identity(9, 1009.0))  # after close: counted, never lost silently
    assert rec.stats().dropped == 5


def test_privacy_blur_writes_nothing_of_a_track_that_ends_unknown(tmp_path: Path) -> None:
    url = str(tmp_path / "h.db")
    rec = HistoryRecorder(url, HistoryConfig(url=url), MODEL, "run-1", keep_unknowns=False)
    crop = np.full((32, 32, 3), 128, np.uint8)
    for track_id in (1, 2, 3):
        rec.open.setdefault(("cam1", track_id), OpenTrack()).add(0, 0.0, 5000.0, np.ones(4, np.float32), crop,
                                                                 1.0, 0.9, 5)
    # track 1 is undecided, then named: a named track is kept whole, its earlier frames included
    rec.write(Event(type="identity", source="cam1", track_id=1, identity=None, frame=0, ts=5000.0))
    rec.write(identity(1, 5001.0))
    rec.write(Event(type="track_ended", source="cam1", track_id=1, identity="alice", frame=1, ts=5001.0))
    # track 2 never named; track 3 named, then lost its name: both end unknown and leave nothing
    rec.write(Event(type="identity", source="cam1", track_id=2, identity=None, frame=0, ts=5000.0))
    rec.write(Event(type="track_ended", source="cam1", track_id=2, frame=1, ts=5001.0))
    rec.write(identity(3, 5000.0))
    rec.write(Event(type="track_ended", source="cam1", track_id=3, frame=1, ts=5001.0))
    rec.close()
    assert rec.stats().as_dict() == {"delivered": 3, "dropped": 0, "queued": 0, "skipped": 0, "private": 2}
    assert not rec.open  # nothing of the unknown tracks is held either
    with HistoryStore.open(url) as store:
        assert [(r.track_id, r.identity) for r in store.tracks()] == [(1, "alice")]
        assert [d.identity for d in store.decisions("run-1", "cam1", 1)] == ["alice"]
        assert store.decisions("run-1", "cam1", 2) == []
        # the decision naming track 3 is about an enrolled person: kept; the track itself is not
        assert [d.identity for d in store.decisions("run-1", "cam1", 3)] == ["alice"]
