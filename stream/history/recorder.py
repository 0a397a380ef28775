"""A run's history, written as it runs: one object that is both a frame observer and an event sink.

As an observer (``on_frame``) it keeps, per open track, what the publisher already has in hand:
the quality-weighted sum of its embeddings (the voter's weights: the mean the track matched), the
best ``best_crops`` embeddings and crops by quality, the detector scores. As a sink (``write``) it
turns each ``identity`` event into a decision row and each ``track_ended`` into a track row.

Rows go to a bounded queue; one thread of the recorder commits them in batches (every
``commit_every_s`` or ``commit_rows``), so a slow or unreachable database never blocks the
pipeline: a full queue drops its oldest rows, counted, and a commit that fails (PostgreSQL
restarting) is retried with its rows kept. Stats count rows: ``delivered`` are committed.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream.events.schema import Event
from stream.events.sinks import SinkStats
from stream.history.config import HistoryConfig
from stream.history.retention import Pruner
from stream.history.store import Decision, HistoryStore, NewTrack, RunRow
from stream.history.strangers import StrangerMemory, track_to_track_threshold
from stream.sources.credentials import mask_credentials

if TYPE_CHECKING:
    from stream.pipeline.observers import FrameView

log = logging.getLogger(__name__)

SINK_NAME = "history"


@dataclass
class TrackModel:
    """What every track of a run shares: the model and its embedding space."""

    name: str
    embedding_space: str
    dim: int


@dataclass
class OpenTrack:
    """One track while it lasts: sums, not lists, so its memory is bounded however long it runs."""

    total: np.ndarray | None = None  # float64 quality-weighted sum of embeddings
    weight: float = 0.0
    faces: int = 0
    score_sum: float = 0.0
    first: tuple[int, float, float] | None = None  # (frame, pts, capture_ts) of the first frame seen
    last: tuple[int, float, float] | None = None
    best: list[tuple[float, int, np.ndarray, np.ndarray]] = field(default_factory=list)  # min-heap

    def seen(self, frame: int, pts: float, ts: float) -> None:
        # Strictly earlier or later only: a frame's own pts (exact) comes before its events' (rounded).
        if self.first is None or frame < self.first[0]:
            self.first = (frame, pts, ts)
        if self.last is None or frame > self.last[0]:
            self.last = (frame, pts, ts)

    def add(self, frame: int, pts: float, ts: float, embedding: np.ndarray, crop: np.ndarray, quality: float,
            score: float, keep: int) -> None:
        self.seen(frame, pts, ts)
        w = max(float(quality), 1e-3) if np.isfinite(quality) else 1e-3
        e = np.asarray(embedding, np.float64)
        self.total = e * w if self.total is None else self.total + e * w
        self.weight += w
        self.faces += 1
        self.score_sum += float(score)
        key = (w, int(frame))
        if len(self.best) < keep:  # crops are views into shared memory: copied, the slot goes back
            heapq.heappush(self.best, (*key, np.array(embedding, np.float32), np.array(crop)))
        elif key > self.best[0][:2]:
            heapq.heapreplace(self.best, (*key, np.array(embedding, np.float32), np.array(crop)))


@dataclass
class PendingTrack:
    """A finished track on its way to the store; its thumbnail is encoded on the writer's thread."""

    row: NewTrack
    crop: np.ndarray | None


def file_start(setting: str, video: str | None) -> float:
    """The wall-clock time a recorded file starts at, by ``history.file_start`` (0 when unknown)."""
    if setting == "none" or not video:
        return 0.0
    if setting == "mtime":
        try:
            return Path(video).stat().st_mtime
        except OSError:
            return 0.0
    return datetime.fromisoformat(setting).timestamp()


class HistoryRecorder:
    """Observer and sink of one publisher: see the module's doc."""

    sink_name = SINK_NAME

    def __init__(self, url: str, config: HistoryConfig, model: TrackModel, run_id: str, *,
                 origin: str | None = None, videos: dict[str, str] | None = None,
                 store_factory: Any = HistoryStore.open, keep_unknowns: bool = True) -> None:
        self.url, self.config, self.model, self.run_id, self.origin = url, config, model, run_id, origin
        self.shown = mask_credentials(url)  # for log lines: never a PostgreSQL password
        self.videos = dict(videos or {})  # source -> file, for the sources that are recorded files
        self.starts = {name: file_start(config.file_start, path) for name, path in self.videos.items()}
        self.open: dict[tuple[str, int], OpenTrack] = {}
        self.skipped = 0  # tracks that ended without one embedding: nothing to search them by
        # privacy.unknowns: blur: a track that ends unknown, and decisions of no one, are not written
        # (its sums were kept in memory only, in case it was named before its end)
        self.keep_unknowns = keep_unknowns
        self.private = 0
        self.delivered = 0
        self.dropped = 0
        self._queue: deque[PendingTrack | Decision] = deque()
        self._busy = 0  # rows the thread holds, taken off the queue
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._store_factory = store_factory
        self.pruner = Pruner.from_config(config)  # history.keep_days / max_mb, on the writer thread
        self.strangers = self._stranger_memory()  # used by the writer thread only
        self.new_strangers = 0
        self._thread = threading.Thread(target=self._run, name="sink-history", daemon=True)
        self._thread.start()

    def _stranger_memory(self) -> StrangerMemory | None:
        config, model = self.config, self.model
        if not config.strangers:
            return None
        threshold = track_to_track_threshold(model.name, config.strangers_threshold)
        if threshold is None:
            log.info("history: no stranger ids: no track-to-track threshold measured for model %s "
                     "(set history.strangers_threshold)", model.name)
            return None
        # Not held longer than the store keeps them (history.keep_days).
        days = min(config.strangers_days, config.keep_days) if config.keep_days else config.strangers_days
        return StrangerMemory(model.embedding_space, threshold, days, config.strangers_cache)

    # -- times -----------------------------------------------------------------------------------
    def _when(self, source: str, pts: float | None, ts: float) -> float:
        """Live: the wall clock of the frame. A file: its start (when known) plus the pts."""
        if source in self.videos:
            return self.starts.get(source, 0.0) + float(pts or 0.0)
        return float(ts)

    # -- the publisher's side: frames ------------------------------------------------------------
    def on_frame(self, view: FrameView) -> None:
        if not len(view.embed_rows):
            return
        frame = view.frame
        crops, tracks, quality, scores = view.crops(), view.outcome.tracks, view.outcome.quality, view.faces.score
        keep = self.config.best_crops
        for k, row in enumerate(view.embed_rows):
            track = self.open.setdefault((frame.source, int(tracks[row][0])), OpenTrack())
            track.add(frame.index, frame.pts, frame.capture_ts, view.embeddings[k], crops[k], float(quality[row]),
                      float(scores[row]), keep)

    def on_event(self, event: Event) -> None:
        pass  # events come through ``write``, as to every sink

    def end_source(self, source: str) -> None:
        pass

    # -- the publisher's side: events ------------------------------------------------------------
    def write(self, event: Event) -> None:
        if event.identity is None and not self.keep_unknowns and self._private(event):
            return
        if event.type == "identity" and event.track_id is not None:
            self._put(Decision(self.run_id, event.source, int(event.track_id),
                               self._when(event.source, event.pts, event.ts), event.pts, event.frame,
                               event.identity, event.score, event.distance, event.reason))
        elif event.type == "track_started" and event.track_id is not None:
            track = self.open.setdefault((event.source, int(event.track_id)), OpenTrack())
            if event.frame is not None:
                track.seen(int(event.frame), float(event.pts or 0.0), event.ts)
        elif event.type == "track_ended" and event.track_id is not None:
            track = self.open.pop((event.source, int(event.track_id)), None)
            if track is None or track.total is None:
                self.skipped += 1
                return
            if event.frame is not None:
                track.seen(int(event.frame), float(event.pts or 0.0), event.ts)
            self._put(self._finished(event, track))

    def _private(self, event: Event) -> bool:
        """Under privacy.unknowns: blur, drop what an unknown event would write; True when dropped."""
        if event.type == "identity":
            return True
        if event.type == "track_ended" and event.track_id is not None:
            if self.open.pop((event.source, int(event.track_id)), None) is not None:
                self.private += 1
            return True
        return False

    def _finished(self, event: Event, track: OpenTrack) -> PendingTrack:
        assert track.total is not None and track.first is not None and track.last is not None
        source = event.source
        best = sorted(track.best, key=lambda b: (-b[0], b[1]))
        model = self.model
        row = NewTrack(
            run_id=self.run_id, origin=self.origin, source=source, track_id=int(event.track_id or 0),
            started_at=self._when(source, track.first[1], track.first[2]),
            ended_at=self._when(source, track.last[1], track.last[2]),
            start_pts=track.first[1], end_pts=track.last[1], first_frame=track.first[0], last_frame=track.last[0],
            video=self.videos.get(source), identity=event.identity, score=event.score, distance=event.distance,
            detector_score=track.score_sum / track.faces, faces=track.faces,
            model=model.name, embedding_space=model.embedding_space, dim=model.dim,
            # the model's own scale (dlib's norms are ~1.4): what its metric and threshold apply to
            mean=(track.total / track.weight).astype(np.float32),
            best=np.stack([b[2] for b in best]).astype(np.float32))
        return PendingTrack(row, best[0][3] if best else None)

    def _put(self, item: PendingTrack | Decision) -> None:
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self.config.queue:  # the store is slow or away: lose the oldest
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            if len(self._queue) >= self.config.commit_rows:
                self._cond.notify()

    def stats(self) -> SinkStats:
        with self._cond:
            extra = {"skipped": self.skipped} if self.keep_unknowns else {"skipped": self.skipped,
                                                                          "private": self.private}
            return SinkStats(self.delivered, self.dropped, len(self._queue) + self._busy, extra)

    def close(self) -> None:
        """Commit what is queued for up to ``drain_s``, then stop; what is left is counted dropped."""
        with self._cond:
            if self._closing:
                return
            self._deadline = time.monotonic() + self.config.drain_s
            self._closing = True
            self._cond.notify_all()
        self._thread.join(self.config.drain_s + 5.0)
        with self._cond:
            self.dropped += len(self._queue) + self._busy
            self._queue.clear()
            self._busy = 0
        log.log(logging.WARNING if self.dropped else logging.INFO,
                "history: %d row(s) written, %d dropped, %d track(s) without embeddings", self.delivered,
                self.dropped, self.skipped)

    # -- the recorder's thread -------------------------------------------------------------------
    def _run(self) -> None:
        store: HistoryStore | None = None
        failing = False
        try:
            while True:
                with self._cond:
                    if not self._closing:
                        self._cond.wait_for(lambda: self._closing or len(self._queue) >= self.config.commit_rows,
                                            self.config.commit_every_s)
                    if self._closing and (not self._queue or time.monotonic() >= self._deadline):
                        return
                    batch = [self._queue.popleft() for _ in range(min(len(self._queue), 1000))]
                    self._busy = len(batch)
                if self.pruner.due():
                    self.pruner.run(self._store_factory, self.url, self.shown)
                if not batch:
                    continue
                try:
                    if store is None:
                        store = self._store_factory(self.url)
                        store.begin_run(RunRow(self.run_id, time.time(), None, self.origin,
                                               "archive" if self.videos else "live", self.model.name))
                    self._commit(store, batch)
                    if failing:
                        log.warning("history: %s is back", self.shown)
                        failing = False
                    with self._cond:
                        if self._busy:  # else close counted them
                            self.delivered += len(batch)
                            self._busy = 0
                except Exception as exc:  # the store is away: keep the rows, try again
                    if not failing:
                        log.warning("history: cannot write to %s (%s); retrying", self.shown,
                                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                        failing = True
                    if store is not None:
                        store.close()
                        store = None
                    self._requeue(batch)
                    with self._cond:
                        self._cond.wait_for(lambda: self._closing and time.monotonic() >= self._deadline, 1.0)
        finally:
            if store is not None:
                try:
                    store.end_run(self.run_id, time.time())
                except Exception:  # the run's end time is a nicety: its rows are in
                    log.debug("history: could not record the run's end", exc_info=True)
                store.close()

    def _requeue(self, batch: list[PendingTrack | Decision]) -> None:
        with self._cond:
            held = self._busy
            self._busy = 0
            if not held:
                return
            room = self.config.queue - len(self._queue)
            keep = batch[-room:] if room > 0 else []
            self.dropped += len(batch) - len(keep)
            self._queue.extendleft(reversed(keep))

    def _commit(self, store: HistoryStore, batch: list[PendingTrack | Decision]) -> None:
        tracks: list[NewTrack] = []
        for item in batch:
            if isinstance(item, PendingTrack):
                if item.row.thumbnail is None and item.crop is not None:
                    item.row.thumbnail = encode_thumbnail(item.crop, self.config.thumbnail_quality)
                tracks.append(item.row)
        if self.strangers is not None and tracks:
            self._tag_strangers(store, tracks)
        ids = store.write(tracks, [item for item in batch if isinstance(item, Decision)])
        if self.strangers is not None:
            self.strangers.written(ids, tracks)

    def _tag_strangers(self, store: HistoryStore, tracks: list[NewTrack]) -> None:
        """Stranger ids for the batch's unknown tracks. The store being away raises (the batch is kept and
        retried, tracks already tagged keep their id); anything else turns strangers off for the run
        rather than holding back the rows."""
        from sqlalchemy.exc import SQLAlchemyError

        assert self.strangers is not None
        try:
            self.new_strangers += self.strangers.tag(store, tracks, time.time())
        except SQLAlchemyError:
            raise
        except Exception:
            log.exception("history: stranger ids turned off for this run")
            self.strangers = None


def encode_thumbnail(crop: np.ndarray, quality: int) -> bytes | None:
    import cv2  # the publisher's thumbnails only: OpenCV costs a start ~0.1-0.25 s of CPU

    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else None
