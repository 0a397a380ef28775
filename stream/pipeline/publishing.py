"""The publisher process's work: votes per track, events out, annotation, stats, slot release."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stream.events.mot import MotWriter
from stream.events.schema import Event
from stream.pipeline.messages import EndOfSource, ResultMsg, TrackStatus
from stream.pipeline.shm import FrameRing
from stream.pipeline.stats import LatencyStats, StageTimes
from stream.recognize.appearance import blur_quality

if TYPE_CHECKING:
    from stream.pipeline.workers import PublishSpec

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, spec: PublishSpec, rings: dict[str, FrameRing]) -> None:
        from stream.events.sinks import JsonlSink
        from stream.recognize.gallery import Gallery
        from stream.recognize.stage import RecognitionStage

        self.spec = spec
        self.rings = rings
        cfg = spec.config
        gallery = Gallery.load(cfg.gallery, spec.manifest) if cfg.gallery else Gallery.new(spec.manifest)
        self.stages = {
            name: RecognitionStage(spec.manifest, gallery, cfg.voting, threshold=cfg.model.threshold,
                                   appearance=cfg.appearance)
            for name in rings
        }
        self.sinks: list = []
        if cfg.output.publish:
            from stream.events.publisher import EventPublisher

            self.zmq = EventPublisher(cfg.output.publish, sndhwm=cfg.output.sndhwm)
            self.sinks.append(self.zmq)
        else:
            self.zmq = None
        if cfg.output.events_out:
            self.sinks.append(JsonlSink(cfg.output.events_out))
        self.metrics = None
        if cfg.output.metrics_port:
            from stream.pipeline.metrics import PipelineMetrics

            self.metrics = PipelineMetrics(cfg.output.metrics_port)
        self.annotators: dict[str, tuple] = {}
        self.track_writers: dict[str, MotWriter] = {}
        if cfg.output.tracks_out:
            self.track_writers = {name: MotWriter(_per_source(cfg.output.tracks_out, name, len(rings)))
                                  for name in rings}
        self.latency = LatencyStats()
        self.times = StageTimes()
        self.frames: dict[str, int] = dict.fromkeys(rings, 0)
        self.dropped: dict[str, int] = dict.fromkeys(rings, 0)
        self.errors: dict[str, str] = {}
        self.faces = 0
        self.embedded = 0
        self.batches: list[int] = []
        self.events = 0
        self.tracks: set[tuple[str, int]] = set()
        self.named_tracks: dict[tuple[str, int], list[str]] = {}
        self.first_capture: float | None = None  # throughput counts from the first frame read
        self.last_done = time.time()
        self.last_heartbeat = time.monotonic()

    # -- per frame -------------------------------------------------------------------------------
    def handle(self, msg: ResultMsg) -> None:
        from stream.recognize.stage import FrameResult

        fm = msg.faces_msg
        frame = fm.frame
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
            blur[fm.embed_rows] = blur_quality(self.rings[frame.source].crops(frame.slot)[: len(fm.embed_rows)])
        if self.first_capture is None:
            self.first_capture = frame.capture_ts
        t0 = time.perf_counter()
        stage = self.stages[frame.source]
        events = stage.process(FrameResult(frame.source, frame.index, frame.pts, frame.capture_ts,
                                           faces, embedded, list(fm.ended), blur))
        writer = self.track_writers.get(frame.source)
        if writer is not None:
            writer.write(frame.index, faces, stage.frame_tracks)
        for track_id, confident in stage.take_status_updates():
            self.spec.feedback[frame.source].put(TrackStatus(frame.source, int(track_id), bool(confident)))
        self._emit(events)
        if self.spec.annotate is not None:
            self._annotate(frame, faces, stage)
        publish_ms = (time.perf_counter() - t0) * 1e3
        self.times.add(read=frame.read_ms, detect=fm.detect_ms, embed=msg.embed_ms, publish=publish_ms)
        self.last_done = time.time()
        self.latency.add(self.last_done - frame.capture_ts)
        if self.metrics is not None:
            m, src = self.metrics, frame.source
            m.frames.labels(src).inc()
            m.faces.labels(src).inc(n)
            m.embedded.labels(src).inc(len(fm.embed_rows))
            m.latency.labels(src).observe(self.last_done - frame.capture_ts)
        self.frames[frame.source] += 1
        self.faces += n
        self.embedded += len(fm.embed_rows)
        if msg.batch_size:
            self.batches.append(msg.batch_size)
        for tid in faces.track_id:
            self.tracks.add((frame.source, int(tid)))
        self.spec.frames_done[frame.source].value = self.frames[frame.source]
        # The frame and its crops are no longer needed: hand the slot back to the reader.
        self.spec.free_slots[frame.source].put(frame.slot)

    def end_source(self, msg: EndOfSource) -> None:
        self._emit(self.stages[msg.source].flush(msg.source))
        self.dropped[msg.source] = msg.dropped
        if self.metrics is not None:
            self.metrics.dropped.labels(msg.source).set(msg.dropped)
        if msg.error:
            self.errors[msg.source] = msg.error
        writer = self.annotators.pop(msg.source, None)
        if writer is not None:
            writer[0].close()

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            if event.type == "identity" and event.identity is not None:
                names = self.named_tracks.setdefault((event.source, int(event.track_id or 0)), [])
                if not names or names[-1] != event.identity:
                    names.append(event.identity)
            for sink in self.sinks:
                sink.write(event)
            self.events += 1
            if self.metrics is not None:
                self.metrics.events.labels(event.type).inc()

    def _annotate(self, frame, faces, stage) -> None:
        from stream.annotate import Annotator, VideoAnnotationWriter

        entry = self.annotators.get(frame.source)
        if entry is None:
            path = _per_source(Path(self.spec.annotate), frame.source, len(self.rings))
            fps = self.spec.source_fps.get(frame.source) or 25.0
            entry = (VideoAnnotationWriter(path, fps, (frame.width, frame.height)), Annotator())
            self.annotators[frame.source] = entry
        writer, annotator = entry
        image = self.rings[frame.source].frame(frame.slot, frame.height, frame.width).copy()
        labels = {int(tid): stage.label(int(tid)) for tid in faces.track_id}
        writer.write(annotator.draw(image, faces, labels))

    # -- periodic / final ------------------------------------------------------------------------
    def maybe_heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat < self.spec.config.output.heartbeat_s:
            return
        self.last_heartbeat = now
        stats = self.stats()
        self._emit([Event(type="heartbeat", source=name, ts=time.time(), stats=stats) for name in self.rings])

    def stats(self) -> dict:
        wall = max(self.last_done - (self.first_capture or self.last_done), 1e-9)
        frames = sum(self.frames.values())
        return {
            "frames": frames,
            "faces": self.faces,
            "embedded": self.embedded,
            "tracks": len(self.tracks),
            "events": self.events,
            "fps": round(frames / wall, 2),
            "latency_ms": self.latency.summary(),
            "dropped": sum(self.dropped.values()),
            "published": getattr(self.zmq, "sent", None),
            "publish_dropped": getattr(self.zmq, "dropped", None),
        }

    def summary(self) -> dict:
        out = self.stats()
        out["per_source"] = {name: {"frames": self.frames[name], "dropped": self.dropped[name]} for name in self.rings}
        out["stage_ms_per_frame"] = self.times.per_frame()
        out["mean_batch"] = round(float(np.mean(self.batches)), 2) if self.batches else 0.0
        out["named_tracks"] = {f"{s}#{t}": names for (s, t), names in sorted(self.named_tracks.items())}
        out["errors"] = self.errors
        return out

    def close(self) -> None:
        for writer, _ in self.annotators.values():
            writer.close()
        for tracks in self.track_writers.values():
            tracks.close()
        for sink in self.sinks:
            sink.close()


def _per_source(path: Path, source: str, sources: int) -> Path:
    """One output file per source when there are several: ``out.mp4`` -> ``out-<source>.mp4``."""
    return path if sources == 1 else path.with_name(f"{path.stem}-{source}{path.suffix}")
