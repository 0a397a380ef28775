"""Search by face for a long-lived web view: the stored tracks' means held in a TrackIndex, built in the
background and topped up with the rows written since (row id > the last one held).

Reading the whole store per query costs a full scan (seconds at a million tracks); held in memory a
query is one matrix-vector product (or faiss past its threshold, stream/history/search_index.py).
Until the first build is done a query streams the store instead, so the page answers from the start.
Only tracks solid enough to be results are held (search.MIN_FACES, MIN_DETECTOR_SCORE), as `facestream
search` keeps by default. Rows deleted since (forget, prune) are dropped when the hits are read back,
and the index is rebuilt from scratch every ``rebuild_s``, which also picks up a PostgreSQL row that
committed after a higher id had been read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stream.errors import FacestreamError
from stream.history import queries
from stream.history.search import (
    MIN_DETECTOR_SCORE,
    MIN_FACES,
    PHOTO_TO_TRACK_THRESHOLDS,
    Hit,
    search_blocks,
)
from stream.history.search_index import TrackIndex
from stream.history.store import HistoryStore
from stream.web.priority import yield_to_the_run

log = logging.getLogger(__name__)


@dataclass
class _Held:
    index: TrackIndex
    last_id: int
    built_at: float


class HeldIndexes:
    """One TrackIndex per embedding space, shared by the server's threads (a lock around each use)."""

    def __init__(self, open_store: Callable[[], HistoryStore], refresh_s: float = 2.0, rebuild_s: float = 600.0,
                 faiss_from: int | None = None) -> None:
        self._open_store = open_store
        self.refresh_s = refresh_s
        self.rebuild_s = rebuild_s
        self.faiss_from = faiss_from
        self._held: dict[str, _Held] = {}
        self._wanted: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-index", daemon=True)
        self._thread.start()

    def want(self, embedding_space: str) -> None:
        """Build the index of this space in the background (the view's model's, at start)."""
        with self._lock:
            if embedding_space not in self._wanted:
                self._wanted.add(embedding_space)
                self._wake.set()

    def ready(self, embedding_space: str) -> bool:
        with self._lock:
            return embedding_space in self._held

    def search(self, store: HistoryStore, embedding_space: str, query: np.ndarray, threshold: float,
               limit: int) -> tuple[list[Hit], str]:
        """Hits nearest first, and how they were found ("exact", "faiss-ivf", or "scan" before the build)."""
        self.want(embedding_space)
        with self._lock:
            held = self._held.get(embedding_space)
            if held is not None:
                self._top_up(store, embedding_space, held)  # rows since the last refresh: a page sees its run's
                return held.index.search(query, threshold, limit), held.index.kind
        blocks = queries.mean_blocks_after(store, embedding_space, 0, min_faces=MIN_FACES,
                                           min_detector_score=MIN_DETECTOR_SCORE)
        return search_blocks(query, blocks, threshold, limit), "scan"

    def drop(self) -> None:
        """Forget every held index (after an erasure): queries scan the store until the rebuild."""
        with self._lock:
            self._held.clear()
            self._wake.set()

    def size(self, embedding_space: str) -> int:
        with self._lock:
            held = self._held.get(embedding_space)
            return len(held.index) if held else 0

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    # -- the background thread -------------------------------------------------------------------
    def _top_up(self, store: HistoryStore, space: str, held: _Held) -> None:
        for ids, embs in queries.mean_blocks_after(store, space, held.last_id, min_faces=MIN_FACES,
                                                   min_detector_score=MIN_DETECTOR_SCORE):
            held.index.add(ids, embs)
            held.last_id = int(ids[-1])

    def _build(self, store: HistoryStore, space: str) -> _Held | None:
        index, last = None, 0
        kwargs = {} if self.faiss_from is None else {"faiss_from": self.faiss_from}
        for ids, embs in queries.mean_blocks_after(store, space, 0, min_faces=MIN_FACES,
                                                   min_detector_score=MIN_DETECTOR_SCORE):
            index = index or TrackIndex(embs.shape[1], **kwargs)
            index.add(ids, embs)
            last = int(ids[-1])
        if index is None:
            return None  # nothing of this space yet: scanned per query (cheap: there is nothing) until there is
        index.kind  # noqa: B018 - joins the blocks (and trains faiss) here, not in the first query
        return _Held(index, last, time.monotonic())

    def _run(self) -> None:
        yield_to_the_run()  # building and topping up the index waits for the run, as the page does
        store: HistoryStore | None = None  # the view's, closed by it
        while not self._stop.is_set():
            try:
                store = store or self._open_store()
                with self._lock:
                    wanted = sorted(self._wanted)
                for space in wanted:
                    with self._lock:
                        held = self._held.get(space)
                    if held is None or time.monotonic() - held.built_at > self.rebuild_s:
                        fresh = self._build(store, space)  # outside the lock: queries scan meanwhile
                        if fresh is not None:
                            with self._lock:
                                self._held[space] = fresh
                    else:
                        with self._lock:
                            self._top_up(store, space, held)
            except FacestreamError as exc:  # the store is away (PostgreSQL restarting): the next round retries
                log.warning("history index: %s", exc)
            except Exception as exc:  # a database error of the moment; the view must stay up
                log.warning("history index: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._wake.wait(self.refresh_s)
            self._wake.clear()


def track_threshold(model: str, given: float | None) -> float:
    """The distance cut for a search: the one asked for, else the model's measured photo-to-track one."""
    if given is not None:
        return given
    if model in PHOTO_TO_TRACK_THRESHOLDS:
        return PHOTO_TO_TRACK_THRESHOLDS[model]
    from stream.history.search import photo_to_track_threshold
    from stream.models.store import ModelStore

    manifest = ModelStore().get(model, verify=False).manifest
    return photo_to_track_threshold(model, manifest.metric, manifest.threshold)
