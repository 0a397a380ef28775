"""The publisher process's work: votes per track, events to every sink, frames to every observer,
the run's figures, slot release.

Everything the run reports is kept in the run's ledger (shared memory) and track journal, not in
this process: a restarted publisher goes on with the same ``seq``, totals and track ids, first
ending the tracks its killed predecessor left open (``reason: publisher_restarted``). Frames that
never arrive (lost with a killed worker) are counted and listed, and their slots reclaimed. Which
frames were sent is told by the reader's own count (``FrameMsg.seq``), not by gaps in frame
numbers: a live camera's numbers have gaps for every frame the newest-frame policy dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stream.events.registry import build_sinks
from stream.events.schema import Event
from stream.events.sinks import EventSink
from stream.pipeline.ledger import MAX_SINKS, RELEASED, SINK_TOTALS, RunLedger, TrackJournal
from stream.pipeline.messages import EndOfSource, ResultMsg, TrackStatus
from stream.pipeline.metrics import PipelineMetrics
from stream.pipeline.observers import FrameObserver, FrameView
from stream.pipeline.shm import FrameRing
from stream.pipeline.side_jobs import build_side_jobs
from stream.pipeline.stats import LatencyStats
from stream.recognize.appearance import blur_quality
from stream.recognize.gallery import Gallery
from stream.recognize.reload import GalleryWatcher, load_or_last_good
from stream.recognize.stage import FrameResult, RecognitionStage

if TYPE_CHECKING:
    from stream.pipeline.specs import PublishSpec

log = logging.getLogger(__name__)


class Publisher:
    """The publish stage's bookkeeping: frame order, slots, the run's counters, and fan-out of each
    frame to the observers and of each event to the sinks. ``open`` builds it from a run's spec."""

    def __init__(self, spec: PublishSpec, rings: dict[str, FrameRing], ledger: RunLedger,
                 stages: dict[str, RecognitionStage], sinks: Mapping[str, EventSink] | None = None,
                 observers: list[FrameObserver] | None = None, metrics: PipelineMetrics | None = None,
                 gallery_watch: GalleryWatcher | None = None, incarnation: int = 1) -> None:
        self.spec = spec
        self.rings = rings
        self.ledger = ledger
        self.run = ledger.run
        self.incarnation = incarnation
        self.stages = stages
        self.sinks: dict[str, EventSink] = dict(sinks or {})
        self.observers = list(observers or [])
        self.metrics = metrics
        # Enrolls and removals while running: the file is polled and swapped into every stage.
        self.gallery_watch = gallery_watch
        self.epochs: dict[str, int] = {}  # per source: the detect worker incarnation its tracks come from
        restored = TrackJournal.replay(ledger.journal_path)
        self.journal = TrackJournal(ledger.journal_path)
        self.named_tracks = restored.named
        self.lost_ranges = restored.lost
        # What earlier incarnations' sinks counted; this one's counts are added on top.
        self._sink_base = {name: {k: int(ledger.sinks[f"{i}:{k}"]) if ledger.sinks is not None and i < MAX_SINKS
                                  else 0 for k in SINK_TOTALS}
                           for i, name in enumerate(self.sinks)}
        self.latency = LatencyStats()  # this incarnation's frames: percentiles need the samples
        self.errors: dict[str, str] = {}
        self.last_heartbeat = time.monotonic()
        if restored.open_tracks:
            self._end_orphans(restored.open_tracks)

    @classmethod
    def open(cls, spec: PublishSpec, rings: dict[str, FrameRing], ledger: RunLedger,
             incarnation: int = 1) -> Publisher:
        """Everything the run's config asks of the publisher: stages, sinks, side jobs, metrics."""
        cfg = spec.config
        # the last good gallery, kept beside the journal: a restart after a bad save starts from it
        keep = Path(ledger.journal_path).with_name("gallery.last-good.npz")
        gallery = load_or_last_good(cfg.gallery, spec.manifest, keep) if cfg.gallery else Gallery.new(spec.manifest)
        stages = {
            name: RecognitionStage(spec.manifest, gallery, cfg.voting, threshold=cfg.model.threshold,
                                   appearance=cfg.appearance,
                                   new_track_id=lambda led=ledger.sources[name]: int(led.add("next_track_id")))
            for name in rings
        }
        # loads and index builds run off this thread: the stages match with the current gallery meanwhile
        watch = GalleryWatcher(cfg.gallery, spec.manifest, keep=keep, search=cfg.gallery_search, background=True,
                               initial=gallery) if cfg.gallery else None
        sinks = build_sinks(cfg, spec.sinks)
        observers: list[FrameObserver] = []
        try:
            metrics = None
            if cfg.output.metrics_port:
                metrics = PipelineMetrics(cfg.output.metrics_port)
                metrics.resume(ledger)
            observers = build_side_jobs(spec, ledger, incarnation)
            for make in spec.observers:  # one at a time: a failure closes those already made
                observers.append(make())
            # A side job that is also a sink (the history recorder): its counts go with the sinks'.
            sinks.update((job.sink_name, job) for job in observers if getattr(job, "sink_name", None))
        except BaseException:
            for part in [*observers, *sinks.values()]:
                part.close()
            raise
        return cls(spec, rings, ledger, stages, sinks, observers, metrics, watch, incarnation)

    def _end_orphans(self, open_tracks: dict[tuple[str, int], dict]) -> None:
        """End the tracks a killed publisher left open: nobody here knows their votes any more."""
        now = time.time()
        log.warning("publisher restarted: ending %d open track(s)", len(open_tracks))
        self._emit([Event(type="track_ended", source=source, track_id=track_id, identity=last.get("identity"),
                          bbox=last.get("bbox"), frame=last.get("frame"), pts=last.get("pts"), ts=now,
                          reason="publisher_restarted")
                    for (source, track_id), last in sorted(open_tracks.items())])

    # -- per frame -------------------------------------------------------------------------------
    def handle(self, msg: ResultMsg) -> None:
        fm = msg.faces_msg
        frame = fm.frame
        src = frame.source
        led = self.ledger.sources[src]
        if frame.index <= led["last_frame"]:  # sent twice by a reader killed right after sending it
            led.add("duplicates")
            self._release(src, frame.slot)
            return
        missing = (frame.seq - int(led["last_seq"]) - 1 if frame.seq >= 0
                   else frame.index - int(led["last_frame"]) - 1)
        if missing > 0:
            self._lost(src, missing, int(led["last_frame"]) + 1, frame.index - 1)
        self._reclaim(src, frame.index, frame.slot)
        led["last_frame"] = frame.index
        led["last_seq"] = max(frame.seq, int(led["last_seq"]))
        led.add("frames")
        stage = self.stages[src]
        if src not in self.epochs:  # the source's first frame here: its reader has set its frame step
            stage.voting = stage.voting.at_frame_step(float(led["frame_step"]) or 1.0)
        if self.epochs.setdefault(src, fm.epoch) != fm.epoch:
            # A new detect worker: its tracker numbers from 1 again, so every open track ends here.
            self._emit(stage.flush(src, reason="worker_restarted"))
            self.epochs[src] = fm.epoch
        faces = fm.faces
        n = len(faces)
        embedded = np.zeros(n, bool)
        embeddings = None
        if len(fm.embed_rows):
            embedded[fm.embed_rows] = True
            embeddings = np.full((n, msg.embeddings.shape[1]), np.nan, np.float32)
            embeddings[fm.embed_rows] = msg.embeddings
        faces = faces.with_(embeddings=embeddings)
        blur = None
        if len(fm.embed_rows):
            blur = np.full(n, np.nan, np.float32)
            blur[fm.embed_rows] = blur_quality(self.rings[src].crops(frame.slot)[: len(fm.embed_rows)])
        if not self.run["first_capture"]:
            self.run["first_capture"] = frame.capture_ts
        t0 = time.perf_counter()
        outcome = stage.process(FrameResult(src, frame.index, frame.pts, frame.capture_ts,
                                            faces, embedded, list(fm.ended), blur))
        # Before this frame's events go out: a track that ends in them has all its frames.
        view = FrameView(frame, faces, fm.embed_rows, msg.embeddings, outcome, self.rings[src])
        for observer in self.observers:
            observer.on_frame(view)
        for track_id, confident in outcome.status:
            self.spec.feedback[src].put(TrackStatus(src, int(track_id), bool(confident), fm.epoch))
        self._emit(outcome.events)
        publish_ms = (time.perf_counter() - t0) * 1e3
        run = self.run
        for key, ms in (("ms_read", frame.read_ms), ("ms_detect", fm.detect_ms), ("ms_embed", msg.embed_ms),
                        ("ms_publish", publish_ms)):
            run.add(key, ms)
        run.add("timed_frames")
        done = time.time()
        run["last_done"] = done
        self.latency.add(done - frame.capture_ts)
        if self.metrics is not None:
            m = self.metrics
            m.frames.labels(src).inc()
            m.faces.labels(src).inc(n)
            m.embedded.labels(src).inc(len(fm.embed_rows))
            m.latency.labels(src).observe(done - frame.capture_ts)
        run.add("faces", n)
        run.add("embedded", len(fm.embed_rows))
        if msg.batch_size:
            run.add("batches")
            run.add("batch_crops", msg.batch_size)
        # The frame and its crops are no longer needed: hand the slot back to the reader.
        self._release(src, frame.slot)

    def _release(self, source: str, slot: int) -> None:
        self.ledger.sources[source].holders[slot] = RELEASED
        self.spec.free_slots[source].put(slot)

    def _reclaim(self, source: str, index: int, keep: int) -> None:
        """Free the slots of frames before ``index`` that will never come (frames arrive in order)."""
        holders = self.ledger.sources[source].holders
        for slot, held in enumerate(holders[:]):
            if slot != keep and 0 <= held <= index:
                self._release(source, slot)

    def _lost(self, source: str, count: int, first: int, last: int) -> None:
        """``count`` frames sent between frames ``first`` and ``last`` never came (the others there, if
        any, were dropped by a live source: never sent)."""
        if count == last - first + 1:
            log.warning("%s: frames %d..%d were lost with a restarted worker", source, first, last)
        else:
            log.warning("%s: %d frame(s) of %d..%d were lost with a restarted worker", source, count, first, last)
        self.ledger.sources[source].add("lost", count)
        self.lost_ranges.setdefault(source, []).append([first, last])
        self.journal.append({"lost": [first, last], "count": count, "source": source})

    def end_source(self, msg: EndOfSource) -> None:
        led = self.ledger.sources[msg.source]
        read = max(msg.frames, int(led["read_next"]))
        # The reader has ended: its count of frames sent is final. Only live readers keep one (a file
        # has no dropped frames, so a gap in its frame numbers is frames lost).
        sent = int(led["sent"])
        missing = sent - 1 - int(led["last_seq"]) if sent else read - 1 - int(led["last_frame"])
        if missing > 0:
            self._lost(msg.source, missing, int(led["last_frame"]) + 1, read - 1)
            led["last_seq"] = max(sent - 1, int(led["last_seq"]))
        if read - 1 > led["last_frame"]:
            led["last_frame"] = read - 1
        self._reclaim(msg.source, read, keep=-1)
        self._emit(self.stages[msg.source].flush(msg.source))
        if self.metrics is not None:
            self.metrics.update(self.ledger)  # dropped, lost and corrupt are final for this source
            self.metrics.update_sinks(self._count_sinks())
        if msg.error:
            self.errors[msg.source] = msg.error
        for observer in self.observers:
            observer.end_source(msg.source)

    def _emit(self, events: list[Event]) -> None:
        run = self.run
        for event in events:
            # One sequence for every sink, kept in the ledger: it goes on across publisher restarts.
            event.seq = int(run.add("seq"))
            event.origin = self.spec.config.output.origin
            if event.type != "heartbeat":
                # Journaled before it goes out: a successor ends every track a consumer saw start.
                self.journal.append({"type": event.type, "source": event.source, "track_id": event.track_id,
                                     "identity": event.identity, "bbox": event.bbox, "frame": event.frame,
                                     "pts": event.pts})
            if event.type == "track_started":
                run.add("tracks")
            elif event.type == "identity" and event.identity is not None:
                names = self.named_tracks.setdefault((event.source, int(event.track_id or 0)), [])
                if not names or names[-1] != event.identity:
                    names.append(event.identity)
            for observer in self.observers:
                observer.on_event(event)
            for sink in self.sinks.values():
                sink.write(event)
            run.add("events")
            self._count_sinks()
            if self.metrics is not None:
                self.metrics.events.labels(event.type).inc()

    def _count_sinks(self) -> dict[str, dict[str, int]]:
        """Each sink's figures for the run: its totals on top of its predecessors' (kept in the
        ledger for a successor), and its gauges (queued) as they are now."""
        counts = {}
        for i, (name, sink) in enumerate(self.sinks.items()):
            now = sink.stats().as_dict()
            base = self._sink_base[name]
            counts[name] = {k: base[k] + v if k in base else v for k, v in now.items()}
            if self.ledger.sinks is not None and i < MAX_SINKS:
                for k in SINK_TOTALS:
                    if k in now:
                        self.ledger.sinks[f"{i}:{k}"] = counts[name][k]
        return counts

    # -- periodic / final ------------------------------------------------------------------------
    def maybe_heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat < self.spec.config.output.heartbeat_s:
            return
        self.last_heartbeat = now
        for sink in self.sinks.values():
            service = getattr(sink, "service", None)  # e.g. ZeroMQ applies (un)subscriptions while idle
            if service is not None:
                service()
        stats = self.stats()
        if self.metrics is not None:
            self.metrics.update(self.ledger)
            self.metrics.update_sinks(stats["sinks"])
        self._emit([Event(type="heartbeat", source=name, ts=time.time(), stats=stats) for name in self.rings])

    def maybe_reload_gallery(self) -> None:
        """Called every loop, like maybe_heartbeat: a changed gallery file applies within ~0.5 s.

        Each stage re-decides its open tracks (RecognitionStage.set_gallery); the tracks that turn
        unconfident are told to the detect worker now, so it embeds them again from its next frame.
        """
        if self.gallery_watch is None:
            return
        gallery = self.gallery_watch.poll()
        if gallery is None:
            return
        for src, stage in self.stages.items():
            self._emit(stage.set_gallery(gallery, src))
            if src in self.epochs:  # else no frame came yet; the first handle() sends them
                for track_id, confident in stage.take_status_updates():
                    self.spec.feedback[src].put(TrackStatus(src, int(track_id), bool(confident), self.epochs[src]))

    def stats(self) -> dict:
        run = self.run
        sinks = self._count_sinks()
        zmq, mqtt = sinks.get("zmq"), sinks.get("mqtt")
        wall = max(run["last_done"] - (run["first_capture"] or run["last_done"]), 1e-9)
        frames = sum(int(led["frames"]) for led in self.ledger.sources.values())
        return {
            "frames": frames,
            "faces": int(run["faces"]),
            "embedded": int(run["embedded"]),
            "tracks": int(run["tracks"]),
            "events": int(run["events"]),
            "fps": round(frames / wall, 2),
            "latency_ms": self.latency.summary(),
            "dropped": sum(int(led["live_dropped"]) for led in self.ledger.sources.values()),
            "lost": sum(int(led["lost"]) for led in self.ledger.sources.values()),
            "corrupt": sum(int(led["corrupt"]) for led in self.ledger.sources.values()),
            "skipped": sum(int(led["skipped"]) for led in self.ledger.sources.values()),
            "published": zmq["delivered"] if zmq is not None else None,
            "publish_dropped": zmq["dropped"] if zmq is not None else None,
            "publish_unheard": zmq["unheard"] if zmq is not None else None,
            "subscribers": getattr(self.sinks["zmq"], "subscribers", None) if zmq is not None else None,
            "mqtt": {k: mqtt[k] for k in ("published", "acked", "dropped")} if mqtt is not None else None,
            "sinks": sinks,
            "worker_restarted": self.ledger.restarts(),
            "sources": {name: self._source_state(name) for name in self.rings},
        }

    def summary(self) -> dict:
        out = self.stats()
        out["per_source"] = {name: self._source_summary(name) for name in self.rings}
        run = self.run
        timed = run["timed_frames"]
        out["stage_ms_per_frame"] = ({k: round(run[f"ms_{k}"] / timed, 2) for k in ("read", "detect", "embed",
                                                                                     "publish")}
                                     if timed else {})
        out["mean_batch"] = round(run["batch_crops"] / run["batches"], 2) if run["batches"] else 0.0
        out["named_tracks"] = {f"{s}#{t}": names for (s, t), names in sorted(self.named_tracks.items())}
        out["errors"] = self.errors
        return out

    def _source_state(self, name: str) -> dict:
        """Whether a source is up, as its reader last wrote it: a camera that is down shows here."""
        led = self.ledger.sources[name]
        online, since = bool(led["online"]), float(led["offline_since"])
        return {"online": online, "reconnects": int(led["reconnects"]), "dropped": int(led["live_dropped"]),
                "corrupt": int(led["corrupt"]), "lost": int(led["lost"]), "skipped": int(led["skipped"]),
                "offline_s": round(max(time.time() - since, 0.0), 1) if since and not online else None,
                "last_error": led.last_error()}

    def _source_summary(self, name: str) -> dict:
        led = self.ledger.sources[name]
        return {"read": int(led["read_next"]), "frames": int(led["frames"]), "lost": int(led["lost"]),
                "lost_frames": self.lost_ranges.get(name, []), "duplicates": int(led["duplicates"]),
                "skipped_on_resume": int(led["read_skipped"]), "dropped": int(led["live_dropped"]),
                "corrupt": int(led["corrupt"]), "reconnects": int(led["reconnects"]),
                "skipped": int(led["skipped"])}

    def close(self) -> None:
        for observer in self.observers:
            observer.close()
        for sink in self.sinks.values():
            sink.close()
        self._count_sinks()  # closing counted what never went out (e.g. MQTT's goodbye, a webhook's queue)
        self.journal.close()
