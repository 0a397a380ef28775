"""The mean embeddings of a SQLite history store, cached beside it for `facestream search`.

A search reads every track's mean: at 1M stored tracks that is 512 MB of blobs through SQLite, seconds
per search, where a product over the same rows held as one float32 matrix takes tens of milliseconds.
So the rows are kept beside the store (``<store>.search/``) as unit rows the search memory-maps, with
what its filters need (ids, camera, times, faces, detector score), in segments like the gallery's:
the rows written since the last search (ids past the newest cached) are appended as a new segment, so
a search after a run reads only that run's rows from the database.

The database stays the truth: before each search the cache is checked against it (the count of the
space's rows up to the newest cached id). Any row deleted since (``forget``, retention) makes them
differ, and the cache is dropped and rebuilt, so a deleted track is never found; ``discard`` drops it
at once, for the erasers. Only a SQLite store gets one: a PostgreSQL site has no "beside", and a cache
in someone's home folder would be a copy of the site's embeddings that nobody prunes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.history.search import Hit, unit_rows
from stream.locking import exclusive_lock

log = logging.getLogger(__name__)

#: segments before the next refresh merges them into one (each is two files to open per search)
MAX_SEGMENTS = 16
#: rows read from the database per query while filling the cache (bounds its memory)
FILL_BLOCK = 65536


def cache_dir(url: str) -> Path | None:
    """Where a store's cache lives: ``<file>.search`` beside a SQLite file; None for other databases."""
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url[len("sqlite:///"):])
    return path.with_name(path.name + ".search")


def discard(url: str) -> None:
    """Delete a store's cache (after rows were deleted: it holds their embeddings)."""
    folder = cache_dir(url)
    if folder is not None and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Segment:
    """Cached rows of one id range: unit means (memory-mapped) and the columns the filters read."""

    seq: int
    last_id: int  # the newest row id this segment (and every one before it) covers
    ids: np.ndarray  # int64 (n,)
    means: np.ndarray  # float32 (n, dim), unit rows
    faces: np.ndarray  # int32
    detector_score: np.ndarray  # float32
    started_at: np.ndarray  # float64
    ended_at: np.ndarray  # float64
    source_code: np.ndarray  # int32 index into sources
    sources: list[str]

    def mask(self, *, since: float | None, until: float | None, source: str | None, min_faces: int,
             min_detector_score: float) -> np.ndarray | None:
        """Rows the filters keep (None: all), as ``HistoryStore.iter_embeddings`` filters in SQL."""
        keep = None

        def both(m: np.ndarray) -> None:
            nonlocal keep
            keep = m if keep is None else keep & m

        if source is not None:
            both(self.source_code == (self.sources.index(source) if source in self.sources else -1))
        if since is not None:
            both(self.ended_at >= since)
        if until is not None:
            both(self.started_at <= until)
        if min_faces:
            both(self.faces >= min_faces)
        if min_detector_score:
            both(self.detector_score >= np.float32(min_detector_score))
        return keep


class SearchCache:
    """One store's cache for one embedding space."""

    def __init__(self, folder: Path, embedding_space: str) -> None:
        self.folder = Path(folder)
        self.space = embedding_space
        # a space's name is free text: the files are named by its hash
        self.key = hashlib.blake2b(embedding_space.encode(), digest_size=8).hexdigest()

    # -- reading ---------------------------------------------------------------------------------
    def segments(self) -> list[Segment]:
        """The complete segments, in order (a segment's meta file is written last: without it, it is
        half written and ignored)."""
        pattern = re.compile(rf"^{self.key}\.(\d{{6}})\.meta\.npz$")
        found = []
        with contextlib.suppress(OSError):
            for name in os.listdir(self.folder):
                if (m := pattern.match(name)) is not None:
                    found.append(int(m.group(1)))
        out = []
        for seq in sorted(found):
            try:
                out.append(self._read(seq))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # dropped, half, foreign
                log.debug("%s: search cache segment %d unreadable (%s)", self.folder, seq, exc)
                return []
        return out

    def _read(self, seq: int) -> Segment:
        with np.load(self._path(seq, "meta.npz"), allow_pickle=False) as meta:
            header = json.loads(str(meta["header"]))
            if header["space"] != self.space:
                raise ValueError("another space's segment")
            cols = {k: meta[k] for k in ("ids", "faces", "detector_score", "started_at", "ended_at", "source_code")}
        means = np.load(self._path(seq, "means.npy"), mmap_mode="r", allow_pickle=False)
        if means.shape[0] != len(cols["ids"]):
            raise ValueError("means and meta differ")
        return Segment(seq, int(header["last_id"]), means=means, sources=list(header["sources"]), **cols)

    def _path(self, seq: int, what: str) -> Path:
        return self.folder / f"{self.key}.{seq:06d}.{what}"

    # -- writing ---------------------------------------------------------------------------------
    def write(self, seq: int, last_id: int, rows: dict[str, np.ndarray], sources: list[str]) -> None:
        """One segment: the means first, the meta (which makes it visible) last, each atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic(self._path(seq, "means.npy"), lambda f: np.save(f, np.ascontiguousarray(rows["means"])))
        header = json.dumps({"space": self.space, "last_id": int(last_id), "sources": sources})
        _atomic(self._path(seq, "meta.npz"), lambda f: np.savez(
            f, header=np.array(header), **{k: v for k, v in rows.items() if k != "means"}))

    def state(self) -> dict | None:
        """What the last check found: the store files' signature, and the rows and newest id cached."""
        try:
            return json.loads((self.folder / f"{self.key}.state.json").read_text())
        except (OSError, ValueError):
            return None

    def set_state(self, state: dict) -> None:
        _atomic(self.folder / f"{self.key}.state.json", lambda f: f.write(json.dumps(state).encode()))

    def clear(self) -> None:
        (self.folder / f"{self.key}.state.json").unlink(missing_ok=True)
        for seq in self._all_seqs():
            for what in ("meta.npz", "means.npy"):
                self._path(seq, what).unlink(missing_ok=True)

    def _all_seqs(self) -> list[int]:
        pattern = re.compile(rf"^{self.key}\.(\d{{6}})\.(meta\.npz|means\.npy)$")
        with contextlib.suppress(OSError):
            return sorted({int(m.group(1)) for n in os.listdir(self.folder) if (m := pattern.match(n))})
        return []

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self.folder / f"{self.key}.lock")


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rows_from(store, space: str, after: int) -> Iterator[tuple[dict[str, np.ndarray], list[str]]]:
    """The space's rows with id > ``after`` from ``track_means``, a block at a time, as segment columns."""
    from stream.history import tables as T

    t = T.track_means.c
    last = after
    with store.engine.connect() as conn:
        while True:
            query = (T.track_means.select()
                     .with_only_columns(t.id, t.mean, t.dim, t.faces, t.detector_score, t.started_at, t.ended_at,
                                        t.source)
                     .where(t.embedding_space == space, t.id > last).order_by(t.id).limit(FILL_BLOCK))
            rows = conn.execute(query).all()
            if not rows:
                return
            last = rows[-1][0]
            n, dim = len(rows), rows[0][2]
            cols = list(zip(*rows))
            names = sorted(set(cols[7]))
            code = {s: i for i, s in enumerate(names)}
            yield {
                "ids": np.array(cols[0], np.int64),
                "means": unit_rows(np.frombuffer(b"".join(cols[1]), dtype="<f4").reshape(n, dim)),
                "faces": np.array(cols[3], np.int32),
                "detector_score": np.array(cols[4], np.float32),
                "started_at": np.array(cols[5], np.float64),
                "ended_at": np.array(cols[6], np.float64),
                "source_code": np.array([code[s] for s in cols[7]], np.int32),
            }, names
            if n < FILL_BLOCK:
                return


def _merge(parts: list[tuple[dict[str, np.ndarray], list[str]]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Blocks (or segments) as one segment's columns, their source codes mapped onto one list."""
    names = sorted({s for _, srcs in parts for s in srcs})
    code = {s: i for i, s in enumerate(names)}
    out: dict[str, list[np.ndarray]] = {}
    for cols, srcs in parts:
        remap = np.array([code[s] for s in srcs] or [0], np.int32)
        for k, v in cols.items():
            out.setdefault(k, []).append(remap[v] if k == "source_code" else np.asarray(v))
    return {k: np.concatenate(v) for k, v in out.items()}, names


def _segment_cols(seg: Segment) -> tuple[dict[str, np.ndarray], list[str]]:
    return {"ids": seg.ids, "means": np.asarray(seg.means), "faces": seg.faces, "detector_score": seg.detector_score,
            "started_at": seg.started_at, "ended_at": seg.ended_at, "source_code": seg.source_code}, seg.sources


def _count_through(store, space: str, last_id: int) -> int:
    from sqlalchemy import func, select

    from stream.history import tables as T

    t = T.track_means.c
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(T.track_means)
                                .where(t.embedding_space == space, t.id <= last_id)).scalar_one())


def _newest(store, space: str) -> int:
    """The space's newest row id: one step down the (space, id) index, however large the store. It
    catches a commit the files' signature missed (the same clock tick, a WAL reused at the same size)."""
    from sqlalchemy import func, select

    from stream.history import tables as T

    t = T.track_means.c
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.max(t.id)).where(t.embedding_space == space)).scalar() or 0)


def _signature(url: str) -> list[list[int]]:
    """(mtime_ns, size, inode) of the store's file and its WAL: any commit changes one of them (a
    delete too: in WAL mode it appends to the WAL; a checkpoint rewrites the file)."""
    path = Path(url[len("sqlite:///"):])
    out = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = os.stat(p)
            out.append([st.st_mtime_ns, st.st_size, st.st_ino])
        except OSError:
            out.append([0, 0, 0])
    return out


def fresh_segments(store, space: str) -> list[Segment] | None:
    """The cache of ``store`` for ``space`` brought up to date with the database (rows written since
    appended, a cache that no longer matches rebuilt); None for a store that has no cache.

    When the store's files have not changed since the last check and no row is newer than the newest
    cached (nothing committed since), the count is not asked: at 1M rows it costs more than the search."""
    folder = cache_dir(store.url)
    if folder is None:
        return None
    cache = SearchCache(folder, space)
    try:
        with cache.lock():
            signature = _signature(store.url)  # before any read: a commit during this check shows next time
            segments = cache.segments()
            cached = sum(len(s.ids) for s in segments)
            state = {"signature": signature, "rows": cached, "last_id": segments[-1].last_id if segments else 0}
            if segments and cache.state() == state and _newest(store, space) == state["last_id"]:
                return segments  # nothing committed since (the files say so, and no row is newer)
            if segments and _count_through(store, space, segments[-1].last_id) != cached:
                segments = []  # rows deleted (or the store replaced): what is cached may hold them
            if not segments:
                cache.clear()
            after = segments[-1].last_id if segments else 0
            new = list(_rows_from(store, space, after))
            if new:
                merged, names = _merge(new)
                seq = segments[-1].seq + 1 if segments else 1
                cache.write(seq, int(merged["ids"][-1]), merged, names)
                segments.append(cache._read(seq))
            if len(segments) > MAX_SEGMENTS:
                merged, names = _merge([_segment_cols(s) for s in segments])
                seq = segments[-1].seq + 1
                cache.write(seq, segments[-1].last_id, merged, names)
                for s in segments:
                    for what in ("meta.npz", "means.npy"):
                        cache._path(s.seq, what).unlink(missing_ok=True)
                segments = [cache._read(seq)]
            cache.set_state({"signature": signature, "rows": sum(len(s.ids) for s in segments),
                             "last_id": segments[-1].last_id if segments else 0})
            return segments
    except OSError as exc:  # a read-only folder, a full disk: search the database itself
        log.warning("%s: cannot keep the search cache (%s); reading the store", folder, exc)
        return None


def search_segments(segments: list[Segment], query: np.ndarray, threshold: float, limit: int, *,
                    since: float | None = None, until: float | None = None, source: str | None = None,
                    min_faces: int = 0, min_detector_score: float = 0.0) -> list[Hit]:
    """Tracks within ``threshold`` of the unit ``query``, nearest first, at most ``limit``: what
    ``search_blocks`` over the store's filtered blocks returns (each id is one row here)."""
    if limit <= 0:
        return []
    q = np.asarray(query, np.float32)
    floor = np.float32(1.0 - threshold * threshold / 2.0)  # |q-b|^2 = 2 - 2 q.b for unit rows
    keep_ids, keep_dist = [], []
    for seg in segments:
        if not len(seg.ids):
            continue
        sims = np.asarray(seg.means) @ q
        near = sims >= floor - 1e-6  # a hair wider: the exact distance below decides
        mask = seg.mask(since=since, until=until, source=source, min_faces=min_faces,
                        min_detector_score=min_detector_score)
        if mask is not None:
            near &= mask
        rows = np.flatnonzero(near)
        if len(rows):
            d = np.sqrt(np.maximum(2.0 - 2.0 * sims[rows], 0.0), dtype=np.float32)
            ok = d <= threshold
            keep_ids.append(seg.ids[rows[ok]])
            keep_dist.append(d[ok])
    if not keep_ids:
        return []
    ids, dist = np.concatenate(keep_ids), np.concatenate(keep_dist)
    order = np.lexsort((ids, dist))[:limit]
    return [Hit(int(i), float(d)) for i, d in zip(ids[order].tolist(), dist[order].tolist())]
