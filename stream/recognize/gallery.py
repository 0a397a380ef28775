"""The gallery: enrolled embeddings of known people, for one model's embedding space.

Stored as a plain ``.npz`` (embeddings, names, sources and a JSON header); loaded with
``allow_pickle=False``, so a gallery file can never run code. Saved atomically (a temp file in
the same directory, then ``os.replace``), so a running pipeline that reloads it never reads half a
file. Writers go through :func:`edit_gallery`, which holds an exclusive lock on the sidecar
``<gallery>.lock`` for the whole load-change-save: two enrolls at once both land.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import FacestreamError
from stream.locking import exclusive_lock
from stream.models.manifest import ModelManifest
from stream.recognize.gallery_file import (
    GALLERY_SCHEMA,
    read_gallery_file,
    read_gallery_header,
    read_gallery_names_array,
)
from stream.recognize.gallery_index import (
    CANDIDATES,
    ExactSearch,
    GallerySearch,
    GallerySearchConfig,
    faiss_available,
    index_dir,
    load_or_build,
    rerank_count,
)
from stream.recognize.names import check_name

log = logging.getLogger(__name__)

class Gallery:
    def __init__(self, model: str, embedding_space: str, metric: str, dim: int,
                 names: list[str] | None = None, embeddings: np.ndarray | None = None,
                 sources: list[str] | None = None, created: float | None = None) -> None:
        self.model = model
        self.embedding_space = embedding_space
        self.metric = metric
        self.dim = dim
        # Set by for_append: the stored rows are read only when something needs them, so an enroll
        # into a 1M-entry gallery reads its header, not 512 MB.
        self._lazy: Path | None = None
        self.names = list(names or [])
        self.embeddings = np.zeros((0, dim), np.float32) if embeddings is None else np.asarray(embeddings, np.float32)
        self.sources = list(sources or [""] * len(self._names))
        self.created = created or time.time()
        # What the files already hold: a save that only added rows appends them as a segment.
        self.persisted = 0
        self.base_rows = 0  # rows of the base .npz: the part a search index covers
        self.segments_through = 0  # the last segment the base holds: the next one is numbered past it
        self._removed = False
        self._enrolled: tuple[int, frozenset[str]] | None = None

    # Rows are kept as parts until read: enrolling photo by photo into a 1M gallery must not copy
    # 512 MB per photo.
    @property
    def names(self) -> list[str]:
        self._materialize()
        return self._names

    @names.setter
    def names(self, value: list[str]) -> None:
        self._names = value

    @property
    def sources(self) -> list[str]:
        self._materialize()
        return self._sources

    @sources.setter
    def sources(self, value: list[str]) -> None:
        self._sources = value

    @property
    def embeddings(self) -> np.ndarray:
        self._materialize()
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0]

    @embeddings.setter
    def embeddings(self, value: np.ndarray) -> None:
        self._parts = [np.asarray(value, np.float32).reshape(-1, self.dim)]
        self._search: GallerySearch | None = None

    @classmethod
    def new(cls, manifest: ModelManifest) -> Gallery:
        return cls(manifest.name, manifest.embedding_space, manifest.metric, manifest.embedding_size)

    def __len__(self) -> int:
        return len(self.names)

    def identities(self) -> list[str]:
        return sorted(self.enrolled())

    def identity_count(self) -> int:
        """How many people are enrolled. For a :meth:`for_append` gallery, counted from the stored
        names array (a 1M-entry enroll must not sort a million Python strings to say so)."""
        if self._lazy is None:
            return len(self.enrolled())
        path = self._lazy
        arrays = [read_gallery_names_array(path)]
        through = read_gallery_header(path)[0].get("segments_through", 0)
        for seq, seg in list_segments(path):
            if seq > through:
                try:
                    arrays.append(np.array(read_gallery_file(seg).names, dtype=str))
                except FacestreamError:
                    if seg.exists():
                        raise
        arrays.append(np.array(self._names, dtype=str))
        width = max(a.dtype.itemsize for a in arrays) // 4 or 1
        merged = np.ascontiguousarray(np.concatenate([a.astype(f"<U{width}") for a in arrays]))
        return int(np.unique(merged.view(f"V{merged.dtype.itemsize}")).size)  # bytes compare: faster than str

    def enrolled(self) -> frozenset[str]:
        """The enrolled names, kept until the next change: a reload computes it off the pipeline's thread."""
        if self._lazy is not None:
            return frozenset(_stored_names(self._lazy)) | frozenset(self._names)
        if self._enrolled is None or self._enrolled[0] != len(self.names):
            self._enrolled = (len(self.names), frozenset(self.names))
        return self._enrolled[1]

    def add(self, name: str, embeddings: np.ndarray, sources: list[str] | None = None) -> None:
        name = check_name(name)
        emb = np.asarray(embeddings, np.float32).reshape(-1, self.dim) if np.size(embeddings) else None
        if emb is None or not np.isfinite(emb).all():
            raise FacestreamError(f"{name}: no valid embeddings to enroll")
        self._parts.append(emb.copy())
        self._search = None
        self._names.extend([name] * len(emb))
        self._sources.extend(sources if sources and len(sources) == len(emb) else [""] * len(emb))

    def remove(self, name: str) -> int:
        """Delete every embedding of ``name``; the number removed (0 when not enrolled)."""
        keep = [i for i, n in enumerate(self.names) if n != name]
        removed = len(self.names) - len(keep)
        if removed:
            self.embeddings = self.embeddings[keep].reshape(-1, self.dim)
            self.names = [self.names[i] for i in keep]
            self.sources = [self.sources[i] for i in keep]
            self._removed = True
            self._enrolled = None
        return removed

    def match(self, queries: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        """Nearest enrolled embedding per query: (names, distances); None/inf when empty.

        Exact unless :meth:`use_index` gave an index; the distances are exact either way.
        """
        q = np.asarray(queries, np.float32).reshape(-1, self.dim)
        if len(self) == 0 or len(q) == 0:
            return [None] * len(q), np.full(len(q), np.inf, np.float32)
        best, distances = self.search().top1(q)
        return [self.names[i] for i in best], distances

    def search(self) -> GallerySearch:
        if self._search is None:
            self._search = GallerySearch(ExactSearch(self.embeddings, self.metric))
        return self._search

    def use_index(self, index: Any, indexed: int, candidates: int = CANDIDATES) -> None:
        """Match through ``index`` over the first ``indexed`` rows (the rest exactly), re-ranking
        ``candidates`` rows a query."""
        self._search = GallerySearch(self.search().exact, index, indexed, candidates)

    def prepare(self, config: GallerySearchConfig, cache: Path | None = None) -> None:
        """Precompute what matching needs (norms; the index when ``config`` wants one): slow at 1M
        entries, so a publisher calls it off the pipeline's thread, before the gallery is used."""
        search = self.search()
        self.enrolled()
        if not config.wants_index(self.base_rows or len(self)) or len(self) < 2:
            return
        if not faiss_available():
            log.warning("gallery_search.index: faiss-cpu is not installed (pip install 'facestream[search-index]'); "
                        "exact search over %d entries", len(self))
            return
        rows = self.base_rows or len(self)
        index = load_or_build(search.exact.matrix[:rows], self.metric, config, cache)
        self.use_index(index, rows, rerank_count(index, config))

    def check_compatible(self, manifest: ModelManifest, path: Path | str = "gallery") -> None:
        if manifest.embedding_space != self.embedding_space or manifest.embedding_size != self.dim:
            raise FacestreamError(
                f"{path}: built with model '{self.model}' ({self.dim}-D); the current model is "
                f"'{manifest.name}' ({manifest.embedding_size}-D): re-enroll, or run with --model {self.model}")

    # -- files -----------------------------------------------------------------------------------
    def _header(self, **extra: Any) -> dict[str, Any]:
        return {"schema": GALLERY_SCHEMA, "model": self.model, "embedding_space": self.embedding_space,
                "metric": self.metric, "dim": self.dim, "created": self.created, "updated": time.time(), **extra}

    def save(self, path: Path) -> None:
        """Write the whole gallery as the base file; the segments it now holds are deleted.

        The base names the last segment it holds (``segments_through``), so a crash between the
        replace and the deletes leaves segments that every load ignores, never rows twice. A cached
        search index of the old base is deleted too: it holds the embeddings of anyone removed.
        """
        path = Path(path)
        segments = list_segments(path)
        through = max((seq for seq, _ in segments), default=0)
        _write_npz(path, self._header(segments_through=through), self.embeddings, self.names, self.sources)
        for _, seg in segments:
            seg.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            for old in index_dir(path).glob("*.faiss"):
                old.unlink(missing_ok=True)
        self.persisted = self.base_rows = len(self)
        self.segments_through = through
        self._removed = False

    def save_changes(self, path: Path) -> None:
        """Save what changed since the load: only rows added -> one new segment (an enroll into 1M
        entries writes kilobytes, not 780 MB); a removal, or many segments -> the whole base."""
        path = Path(path)
        added = len(self._names) - self.persisted  # without reading the stored rows of a for_append gallery
        segments = list_segments(path)
        if self._removed or not path.exists() or added < 0 or len(segments) >= MAX_SEGMENTS:
            self.save(path)
            return
        if added == 0:
            return
        seq = max((s for s, _ in segments), default=self.segments_through) + 1
        folder = segment_dir(path)
        folder.mkdir(exist_ok=True)
        rows = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        _write_npz(folder / f"{seq:06d}.npz", self._header(), rows[self.persisted:],
                   self._names[self.persisted:], self._sources[self.persisted:])
        self.persisted = len(self._names)

    @classmethod
    def for_append(cls, path: Path, manifest: ModelManifest) -> Gallery:
        """The gallery in ``path`` as far as adding to it needs: its checked header. Its stored rows
        are read (by :meth:`load`'s rules) only when something asks for them; adds are saved by
        :meth:`save_changes` as a segment without reading them at all."""
        path = Path(path)
        header, _ = read_gallery_header(path)
        gallery = cls(header["model"], header["embedding_space"], header["metric"], header["dim"],
                      created=header.get("created"))
        gallery.check_compatible(manifest, path)
        gallery.segments_through = header.get("segments_through", 0)
        gallery._lazy = path
        return gallery

    def _materialize(self) -> None:
        path, self._lazy = self._lazy, None
        if path is None:
            return
        stored = Gallery.load(path)
        self._names = stored._names + self._names
        self._sources = stored._sources + self._sources
        self._parts = [stored.embeddings, *(p for p in self._parts if len(p))]
        self.persisted, self.base_rows = stored.persisted, stored.base_rows
        self.segments_through = stored.segments_through
        self._search, self._enrolled = None, None

    @classmethod
    def load(cls, path: Path, manifest: ModelManifest | None = None) -> Gallery:
        """The gallery in ``path`` and its appended segments; anything but exactly what :meth:`save`
        and :meth:`save_changes` write is one FacestreamError."""
        path = Path(path)
        if not path.is_file():
            raise FacestreamError(f"{path}: gallery not found" if not path.exists() else f"{path}: not a file")
        data = read_gallery_file(path)
        header = data.header
        parts, names, sources = [data.embeddings], data.names, data.sources
        through = header.get("segments_through", 0)
        for seq, seg in list_segments(path):
            if seq <= through:  # already in the base: a compaction's deletes did not finish
                continue
            try:
                more = read_gallery_file(seg)
            except FacestreamError as exc:
                if not seg.exists():  # compacted into a newer base meanwhile: the next look sees it
                    continue
                raise FacestreamError(f"{path}: appended {exc}") from None
            if any(more.header[k] != header[k] for k in ("model", "embedding_space", "metric", "dim")):
                raise FacestreamError(f"{seg}: appended to {path} by another model ({more.header['model']})")
            parts.append(more.embeddings)
            names = names + more.names
            sources = sources + more.sources
        embeddings = parts[0] if len(parts) == 1 else np.concatenate(parts)
        gallery = cls(header["model"], header["embedding_space"], header["metric"], header["dim"], names,
                      embeddings, sources, header.get("created"))
        gallery.persisted = len(gallery)
        gallery.base_rows = len(data.names)
        gallery.segments_through = through
        if manifest is not None:
            gallery.check_compatible(manifest, path)
        return gallery


#: segments before an append rewrites the base instead (each one is a file to open per load)
MAX_SEGMENTS = 64
_SEGMENT = re.compile(r"^(\d{6})\.npz$")


def segment_dir(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".append")


def _stored_names(path: Path) -> list[str]:
    """Who the files of a gallery hold, read without the embeddings of the base."""
    header, names = read_gallery_header(path, with_names=True)
    through = header.get("segments_through", 0)
    for seq, seg in list_segments(path):
        if seq > through:
            try:
                names = names + read_gallery_file(seg).names
            except FacestreamError:
                if seg.exists():
                    raise
                # compacted meanwhile: its names are in the base now
    return names or []


def list_segments(path: Path) -> list[tuple[int, Path]]:
    """The appended segments of a gallery, in order; temp files and anything else are not segments."""
    try:
        entries = os.listdir(segment_dir(path))
    except OSError:
        return []
    found = [(int(m.group(1)), segment_dir(path) / name) for name in entries if (m := _SEGMENT.match(name))]
    return sorted(found)


def _write_npz(path: Path, header: dict[str, Any], embeddings: np.ndarray, names: list[str],
               sources: list[str]) -> None:
    """Atomically: a temp file in the same directory, fsynced, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), embeddings=embeddings,
                     names=np.array(names, dtype=str), sources=np.array(sources, dtype=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def gallery_bytes(path: Path) -> bytes:
    """The whole gallery as the bytes of one .npz, for a process elsewhere (a site's shard, a Ray
    task) that gets a copy: the base file itself when nothing was appended, else base and segments
    merged, so an enroll since the last compaction is not left behind."""
    path = Path(path)
    if not list_segments(path):
        return path.read_bytes()
    gallery = Gallery.load(path)
    buf = io.BytesIO()
    np.savez(buf, header=np.array(json.dumps(gallery._header())), embeddings=gallery.embeddings,
             names=np.array(gallery.names, dtype=str), sources=np.array(gallery.sources, dtype=str))
    return buf.getvalue()


FileId = tuple[tuple[int, int, int], tuple[tuple[str, int], ...]]


def file_id(path: Path) -> FileId | None:
    """The base file's (mtime_ns, size, inode) and its segments' (name, size); None when absent.

    What changes on every save and every append. The inode is there because ``os.replace`` gives
    each save a new one, even when a save lands in the same mtime tick with the same size.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    segments = []
    for _, seg in list_segments(path):
        with contextlib.suppress(OSError):
            segments.append((seg.name, os.stat(seg).st_size))
    return (st.st_mtime_ns, st.st_size, st.st_ino), tuple(segments)


def lock_path(path: Path) -> Path:
    """The sidecar lock file: the gallery itself is replaced on save, so it cannot carry the lock."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def edit_gallery(path: Path, manifest: ModelManifest | None = None, *, create: bool = True,
                 compact: bool = False) -> Iterator[Gallery]:
    """Load (or create), let the block change, and save the gallery, all under its exclusive lock.

    Without the lock two writers both load the old file and the second save drops the first's
    names. Nothing is saved when the block raises. ``manifest`` None skips the model check (a
    removal needs no model) and then the gallery must exist. Added rows are appended as a
    segment; ``compact`` (or a removal) rewrites the base with everything.
    """
    path = Path(path)
    with exclusive_lock(lock_path(path)):
        if path.exists() and manifest is not None and not compact:
            gallery = Gallery.for_append(path, manifest)  # a removal in the block reads the rest
        elif path.exists() or not create or manifest is None:
            gallery = Gallery.load(path, manifest)
        else:
            gallery = Gallery.new(manifest)
        yield gallery
        if compact:
            gallery.save(path)
        else:
            gallery.save_changes(path)
