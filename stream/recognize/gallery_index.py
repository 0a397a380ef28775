"""Nearest-enrolled search over a gallery: exact in blocks, or a faiss index for large galleries.

Today's ``distance_matrix`` recomputes every gallery norm on every call and materialises the
whole (queries x gallery) matrix; at 1M entries that is ~100 ms a frame. Here the gallery is one
contiguous float32 matrix with its squared norms (or unit rows, for cosine) computed once per
gallery version, and a match is one GEMM per block. Past ``index_min_entries`` even that is too
slow (a GEMV over 1M x 128 floats reads 512 MB), so an index proposes a few candidates and they
are re-ranked exactly: the distances returned are always exact, only the candidate set comes from
the index. The default index is IVF lists of 4-bit product-quantized codes scanned with SIMD
(faiss's IVF-PQ "fast scan", 32 bytes a 128-D entry): a query reads its nearest quarter-thousand
lists as codes, a sixteenth of what IVF-Flat reads, and the few hundred best are re-ranked against
the float rows (docs/benchmarks.md, "Large galleries": at 1M entries against a crowd with planted
look-alikes, nprobe 320 with 512 candidates agrees with exact search on every one of the clip's
faces at ~2 ms a frame; it builds in under a minute on 2 cores and takes 40 MB). An HNSW graph
(ef_search 512: 99.9%, ~10 ms a frame, 37 min to build at 1M) and IVF-Flat stay as choices. Any
index is built off the pipeline's thread and cached beside the gallery. Rows appended after the
index was built are searched exactly beside it, so an enroll never waits for a rebuild.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

#: rows per GEMM: (queries x BLOCK) float32 scratch stays in cache-friendly megabytes
BLOCK = 65536
#: an ``ivfpq`` index over fewer rows keeps them as floats (IVF-Flat): the codes need training points
#: (16 a code), and so few rows cost nothing to read whole
PQ_MIN_ROWS = 1000
#: candidates an index of exact distances (HNSW, IVF-Flat) proposes per query, re-ranked exactly;
#: a code index proposes ``GallerySearchConfig.pq_candidates``
CANDIDATES = 16


class GallerySearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    index: Literal["auto", "exact", "faiss"] = Field(
        default="auto", description="auto: a faiss index from index_min_entries on, exact search below it")
    index_min_entries: int = Field(
        default=100_000, ge=1, le=100_000_000,
        description="gallery size from which `auto` builds an index: exact search reads the whole gallery "
                    "for every query (~5 ms a frame at 100k entries, the IVF-PQ index ~1)")
    index_type: Literal["ivfpq", "hnsw", "ivf"] = Field(
        default="ivfpq", description="ivfpq: lists of 4-bit codes scanned with SIMD, the best re-ranked exactly "
                                     "(fastest here, under a minute to build at 1M entries, 40 MB); hnsw: a graph "
                                     "(37 min to build at 1M, 750 MB); ivf: lists of float rows (slowest per query)")
    ef_search: int = Field(default=512, ge=1, le=65536,
                           description="hnsw: candidates kept while walking the graph per query: agreement with "
                                       "exact search vs speed (at 1M entries 256: 99.6%, 512: 99.9%, 1024: 100%; "
                                       "cost about linear in it: docs/benchmarks.md)")
    hnsw_m: int = Field(default=32, ge=4, le=128, description="hnsw: links per entry (a rebuild when changed)")
    nprobe: int = Field(default=320, ge=1, le=65536,
                        description="ivfpq and ivf: lists searched per query: agreement with exact search vs speed "
                                    "(ivfpq at 1M entries: 128: 98.8%, 256: 99.9%, 320: 100% of the clip's faces; "
                                    "cost about linear in it: docs/benchmarks.md)")
    pq_candidates: int = Field(default=512, ge=1, le=65536,
                               description="ivfpq: candidates re-ranked against the float rows per query (the codes' "
                                           "distances are approximate; at 1M entries 256: 99.9%, 512: 100%)")

    @property
    def index_tag(self) -> str:
        """What the built index depends on besides the rows: names its cached file."""
        return f"hnsw{self.hnsw_m}" if self.index_type == "hnsw" else self.index_type

    def wants_index(self, entries: int) -> bool:
        if self.index == "exact":
            return False
        return self.index == "faiss" or entries >= self.index_min_entries


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class ExactSearch:
    """Top-1 over a fixed matrix, identical (to float32 rounding) to ``distance_matrix`` + argmin."""

    def __init__(self, embeddings: np.ndarray, metric: str) -> None:
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric
        matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
        if metric == "cosine":
            matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self.matrix = matrix
        self.sqnorms = (matrix * matrix).sum(1)  # the same expression distance_matrix uses, so the same rounding

    def __len__(self) -> int:
        return len(self.matrix)

    def prepare(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.metric == "cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        return q, (q * q).sum(1)

    def raw(self, q: np.ndarray, qq: np.ndarray, rows: slice | np.ndarray) -> np.ndarray:
        """Squared L2 (euclidean) or 1 - cos (cosine) between prepared queries and ``rows``."""
        block = self.matrix[rows]
        if self.metric == "cosine":
            return 1.0 - q @ block.T
        return qq[:, None] + self.sqnorms[rows][None, :] - 2.0 * (q @ block.T)

    def top1(self, q: np.ndarray, qq: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(row, raw distance) of the nearest row from ``start`` on; -1/inf when there is none."""
        best_i = np.full(len(q), -1, np.int64)
        best_d = np.full(len(q), np.inf, np.float32)
        for s in range(start, len(self.matrix), BLOCK):
            d = self.raw(q, qq, slice(s, s + BLOCK))
            j = d.argmin(axis=1)
            v = d[np.arange(len(q)), j]
            better = v < best_d  # strict: on a tie the earlier row wins, as argmin over the whole matrix does
            best_i[better], best_d[better] = j[better] + s, v[better]
        return best_i, best_d

    def finish(self, raw: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return raw.astype(np.float32)
        return np.sqrt(np.maximum(raw, 0.0)).astype(np.float32)


class GallerySearch:
    """What a Gallery matches with: exact search, plus an index over its first ``indexed`` rows."""

    def __init__(self, exact: ExactSearch, index: Any = None, indexed: int = 0, candidates: int = CANDIDATES) -> None:
        self.exact = exact
        self.index = index
        self.indexed = indexed if index is not None else 0
        self.candidates = candidates

    def top1(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q, qq = self.exact.prepare(queries)
        if self.index is None:
            i, raw = self.exact.top1(q, qq)
            return i, self.exact.finish(raw)
        k = min(self.candidates, self.indexed)
        _one_thread()
        _, cand = self.index.search(q, k)
        cand = np.where(cand < 0, cand.max(initial=0), cand)  # IVF pads with -1 when few lists hold rows
        rows = self.exact.matrix[cand]  # (n, k, dim)
        if self.exact.metric == "cosine":
            raw = 1.0 - np.einsum("nkd,nd->nk", rows, q)
        else:
            raw = qq[:, None] + self.exact.sqnorms[cand] - 2.0 * np.einsum("nkd,nd->nk", rows, q)
        j = raw.argmin(axis=1)
        best_i, best_d = cand[np.arange(len(q)), j], raw[np.arange(len(q)), j].astype(np.float32)
        if self.indexed < len(self.exact):  # appended since the index was built
            ti, td = self.exact.top1(q, qq, self.indexed)
            better = td < best_d
            best_i[better], best_d[better] = ti[better], td[better]
        return best_i, self.exact.finish(best_d)


def rerank_count(index: Any, config: GallerySearchConfig) -> int:
    """Rows to re-rank a query: a code index's order is approximate, so it proposes more."""
    import faiss

    return config.pq_candidates if isinstance(index, faiss.IndexIVFPQFastScan) else CANDIDATES


def _one_thread() -> None:
    """A frame's few queries are searched on the calling thread: OpenMP's team costs more than it
    saves for them, and spins on cores the detect workers need. OpenMP keeps this per thread, so an
    index build in the reload thread still uses every core."""
    import faiss

    faiss.omp_set_num_threads(1)


def content_key(matrix: np.ndarray, metric: str) -> str:
    """Names the index built for exactly these rows: a changed or reordered gallery gets another."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{metric}:{matrix.shape}:".encode())
    h.update(memoryview(np.ascontiguousarray(matrix)).cast("B"))
    return h.hexdigest()


def build_index(matrix: np.ndarray, config: GallerySearchConfig | None = None, seed: int = 0) -> Any:
    """The index ``config`` names (L2) over ``matrix``, tuned for queries."""
    config = config or GallerySearchConfig()
    if config.index_type == "hnsw":
        return _build_hnsw(matrix, config)
    return _build_ivf(matrix, config, seed, codes=config.index_type == "ivfpq" and len(matrix) >= PQ_MIN_ROWS)


def _build_hnsw(matrix: np.ndarray, config: GallerySearchConfig) -> Any:
    """An HNSW graph over the rows, stored flat (exact distances). efConstruction 40 (faiss's default):
    a deeper build search costs build minutes for agreement that ef_search buys at query time."""
    import faiss

    index = faiss.IndexHNSWFlat(matrix.shape[1], config.hnsw_m, faiss.METRIC_L2)
    index.hnsw.efConstruction = 40
    index.add(np.ascontiguousarray(matrix, dtype=np.float32))
    tune(index, config)
    return index


def _build_ivf(matrix: np.ndarray, config: GallerySearchConfig, seed: int, codes: bool) -> Any:
    """IVF lists over the rows: float rows (IVF-Flat), or with ``codes`` each row as half as many 4-bit
    product-quantizer codes as it has dimensions, laid out for SIMD scanning (faiss "PQ{m}x4fs": 2
    dimensions a code keeps the re-rank's candidate list short; 4 needed twice the candidates for the
    same agreement). Both train on a sample in seconds."""
    import faiss

    n, dim = matrix.shape
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
    sample = matrix
    if n > 64 * nlist:  # kmeans needs no more; training on all of 1M takes minutes
        sample = matrix[np.random.default_rng(seed).choice(n, 64 * nlist, replace=False)]
    if codes:
        m = dim // 2 if dim % 2 == 0 else dim
        index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x4fs", faiss.METRIC_L2)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist, faiss.METRIC_L2)
    index.train(np.ascontiguousarray(sample))
    index.add(matrix)
    tune(index, config)
    return index


def tune(index: Any, config: GallerySearchConfig) -> None:
    """Set the query-time knobs (they are not part of the cached file's name)."""
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = config.ef_search
    elif hasattr(index, "nprobe"):
        index.nprobe = min(config.nprobe, index.nlist)


def _is_type(index: Any, config: GallerySearchConfig) -> bool:
    import faiss

    if config.index_type == "hnsw":
        return isinstance(index, faiss.IndexHNSW) and index.hnsw.nb_neighbors(1) == config.hnsw_m
    if config.index_type == "ivfpq":
        return isinstance(index, faiss.IndexIVFPQFastScan) or (
            isinstance(index, faiss.IndexIVFFlat) and index.ntotal < PQ_MIN_ROWS)
    return isinstance(index, faiss.IndexIVFFlat)


def index_dir(gallery_path: Path) -> Path:
    gallery_path = Path(gallery_path)
    return gallery_path.with_name(gallery_path.name + ".index")


def load_or_build(matrix: np.ndarray, metric: str, config: GallerySearchConfig, cache: Path | None) -> Any:
    """The index for ``matrix``, from ``cache`` when one was built for these exact rows and this kind
    of index, else built (and saved there for the next start or reload; older ones are removed)."""
    import faiss

    key = content_key(matrix, metric)
    path = None if cache is None else Path(cache) / f"{key}.{config.index_tag}.faiss"
    if path is not None and path.is_file():
        try:
            index = faiss.read_index(str(path))
            if index.ntotal == len(matrix) and index.d == matrix.shape[1] and _is_type(index, config):
                tune(index, config)
                return index
        except RuntimeError as exc:  # a truncated or foreign file: build it again
            log.warning("%s: unreadable gallery index (%s); rebuilding", path, str(exc).splitlines()[0][:120])
    started = time.monotonic()
    index = build_index(matrix, config)
    log.info("gallery %s index built over %d entries in %.1f s", config.index_tag, len(matrix),
             time.monotonic() - started)
    if path is not None:
        _save(index, path)
    return index


def _save(index: Any, path: Path) -> None:
    import faiss

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(index, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for old in path.parent.glob("*.faiss"):
            if old != path:
                old.unlink(missing_ok=True)
    except (OSError, RuntimeError) as exc:  # a cache: the next start builds it again
        log.warning("%s: cannot cache the gallery index (%s)", path, exc)
