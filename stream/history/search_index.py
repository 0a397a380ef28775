"""Stored tracks' mean embeddings held in memory for repeated searches (a long-lived process: the web
page), exact up to a size and a faiss IVF index past it when faiss-cpu is installed.

`facestream search` streams the store instead (stream/history/search.py): one search does not pay for
building an index. Held here the rows are scaled to unit length once, so an exact search is one
matrix-vector product; faiss's IVF index answers in well under a millisecond but takes seconds to
train, and its answers are checked against exact search (tools/bench_search.py: top-10 recall).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from stream.history.search import Hit, unit_rows

#: Rows from which the index is built when faiss is installed (tools/bench_search.py, docs/history.md).
FAISS_FROM = 1_000_000
#: IVF lists probed per query: top-10 recall 1.0 against exact on the benchmark's tracks.
NPROBE = 16


class TrackIndex:
    """Unit embeddings and their store ids; ``search`` as ``search_blocks`` but over memory."""

    def __init__(self, dim: int, faiss_from: int = FAISS_FROM) -> None:
        self.dim = dim
        self.faiss_from = faiss_from
        self._ids: list[np.ndarray] = []
        self._embs: list[np.ndarray] = []
        self.ids = np.zeros(0, np.int64)
        self.embs = np.zeros((0, dim), np.float32)
        self._faiss = None

    @classmethod
    def from_blocks(cls, blocks: Iterable[tuple[np.ndarray, np.ndarray]], dim: int,
                    faiss_from: int = FAISS_FROM) -> TrackIndex:
        index = cls(dim, faiss_from)
        for ids, embs in blocks:
            index.add(ids, embs)
        return index

    def __len__(self) -> int:
        return len(self.ids) + sum(len(i) for i in self._ids)

    def add(self, ids: np.ndarray, embs: np.ndarray) -> None:
        """Rows written since: appended (the arrays are joined at the next search, not per add)."""
        embs = np.asarray(embs, np.float32)
        if embs.ndim != 2 or embs.shape[1] != self.dim or len(embs) != len(ids):
            raise ValueError(f"expected ({len(ids)}, {self.dim}) embeddings, got {embs.shape}")
        self._ids.append(np.asarray(ids, np.int64))
        self._embs.append(unit_rows(embs))

    def _joined(self) -> None:
        if self._ids:
            self.ids = np.concatenate([self.ids, *self._ids])
            fresh = np.concatenate(self._embs)
            self.embs = np.concatenate([self.embs, fresh])
            if self._faiss is not None:
                self._faiss.add(fresh)
            self._ids, self._embs = [], []
        if self._faiss is None and len(self.ids) >= self.faiss_from:
            self._faiss = _build_faiss(self.embs)

    @property
    def kind(self) -> str:
        self._joined()
        return "faiss-ivf" if self._faiss is not None else "exact"

    def search(self, query: np.ndarray, threshold: float, limit: int) -> list[Hit]:
        """Rows within ``threshold`` (unit-sphere distance), nearest first, at most ``limit``; each id once."""
        self._joined()
        if limit <= 0 or not len(self.ids):
            return []
        q = np.asarray(query, np.float32)
        if self._faiss is not None:
            sims, rows = self._faiss.search(q[None], min(4 * limit, len(self.ids)))
            rows, sims = rows[0], sims[0]
            valid = rows >= 0
            rows, sims = rows[valid], sims[valid]
        else:
            sims = self.embs @ q
            # only rows that can be within the threshold are sorted: |q-b|^2 = 2 - 2 q.b
            rows = np.flatnonzero(sims >= 1.0 - threshold * threshold / 2.0)
            sims = sims[rows]
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
        order = np.lexsort((self.ids[rows], dist))
        hits: list[Hit] = []
        seen: set[int] = set()
        for k in order:
            if dist[k] > threshold or len(hits) == limit:
                break
            i = int(self.ids[rows[k]])
            if i not in seen:
                seen.add(i)
                hits.append(Hit(i, float(dist[k])))
        return hits


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _build_faiss(embs: np.ndarray):
    """An IVF-flat inner-product index over unit rows, or None without faiss (exact search then)."""
    try:
        import faiss
    except ImportError:
        return None
    n, dim = embs.shape
    nlist = max(1, int(np.sqrt(n)))  # faiss's rule of thumb; training cost grows with it
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = embs[np.random.default_rng(0).choice(n, min(n, 39 * nlist), replace=False)]
    index.train(sample)
    index.add(embs)
    index.nprobe = NPROBE
    return index
