"""The gallery: enrolled embeddings of known people, for one model's embedding space.

Stored as a plain ``.npz`` (embeddings, names, sources and a JSON header); loaded with
``allow_pickle=False``, so a gallery file can never run code. Saved atomically (a temp file in
the same directory, then ``os.replace``), so a running pipeline that reloads it never reads half a
file. Writers go through :func:`edit_gallery`, which holds an exclusive lock on the sidecar
``<gallery>.lock`` for the whole load-change-save: two enrolls at once both land.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stream.errors import FacestreamError
from stream.locking import exclusive_lock
from stream.models.manifest import ModelManifest, distance_matrix
from stream.recognize.gallery_file import GALLERY_SCHEMA, read_gallery_file
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
        self.names: list[str] = list(names or [])
        self.embeddings = np.zeros((0, dim), np.float32) if embeddings is None else np.asarray(embeddings, np.float32)
        self.sources: list[str] = list(sources or [""] * len(self.names))
        self.created = created or time.time()

    @classmethod
    def new(cls, manifest: ModelManifest) -> Gallery:
        return cls(manifest.name, manifest.embedding_space, manifest.metric, manifest.embedding_size)

    def __len__(self) -> int:
        return len(self.names)

    def identities(self) -> list[str]:
        return sorted(set(self.names))

    def add(self, name: str, embeddings: np.ndarray, sources: list[str] | None = None) -> None:
        name = check_name(name)
        emb = np.asarray(embeddings, np.float32).reshape(-1, self.dim) if np.size(embeddings) else None
        if emb is None or not np.isfinite(emb).all():
            raise FacestreamError(f"{name}: no valid embeddings to enroll")
        self.embeddings = np.concatenate([self.embeddings, emb])
        self.names.extend([name] * len(emb))
        self.sources.extend(sources if sources and len(sources) == len(emb) else [""] * len(emb))

    def remove(self, name: str) -> int:
        """Delete every embedding of ``name``; the number removed (0 when not enrolled)."""
        keep = [i for i, n in enumerate(self.names) if n != name]
        removed = len(self.names) - len(keep)
        self.embeddings = self.embeddings[keep].reshape(-1, self.dim)
        self.names = [self.names[i] for i in keep]
        self.sources = [self.sources[i] for i in keep]
        return removed

    def match(self, queries: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        """Nearest enrolled embedding per query: (names, distances); None/inf when empty."""
        q = np.asarray(queries, np.float32).reshape(-1, self.dim)
        if len(self) == 0 or len(q) == 0:
            return [None] * len(q), np.full(len(q), np.inf, np.float32)
        d = distance_matrix(q, self.embeddings, self.metric)
        best = d.argmin(axis=1)
        return [self.names[i] for i in best], d[np.arange(len(q)), best]

    def check_compatible(self, manifest: ModelManifest, path: Path | str = "gallery") -> None:
        if manifest.embedding_space != self.embedding_space or manifest.embedding_size != self.dim:
            raise FacestreamError(
                f"{path}: built with model '{self.model}' ({self.dim}-D); the current model is "
                f"'{manifest.name}' ({manifest.embedding_size}-D): re-enroll, or run with --model {self.model}")

    # -- files -----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path = Path(path)
        header = {"schema": GALLERY_SCHEMA, "model": self.model, "embedding_space": self.embedding_space,
                  "metric": self.metric, "dim": self.dim, "created": self.created, "updated": time.time()}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, header=np.array(json.dumps(header)), embeddings=self.embeddings,
                         names=np.array(self.names, dtype=str), sources=np.array(self.sources, dtype=str))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, manifest: ModelManifest | None = None) -> Gallery:
        """The gallery in ``path``; anything but exactly what :meth:`save` writes is one FacestreamError."""
        path = Path(path)
        if not path.is_file():
            raise FacestreamError(f"{path}: gallery not found" if not path.exists() else f"{path}: not a file")
        data = read_gallery_file(path)
        header = data.header
        gallery = cls(header["model"], header["embedding_space"], header["metric"], header["dim"], data.names,
                      data.embeddings, data.sources, header.get("created"))
        if manifest is not None:
            gallery.check_compatible(manifest, path)
        return gallery


FileId = tuple[int, int, int]


def file_id(path: Path) -> FileId | None:
    """(mtime_ns, size, inode) of the gallery file, None when absent: what changes on every save.

    The inode is there because ``os.replace`` gives each save a new one, even when a save lands
    in the same mtime tick with the same size.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def lock_path(path: Path) -> Path:
    """The sidecar lock file: the gallery itself is replaced on save, so it cannot carry the lock."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def edit_gallery(path: Path, manifest: ModelManifest | None = None, *, create: bool = True) -> Iterator[Gallery]:
    """Load (or create), let the block change, and save the gallery, all under its exclusive lock.

    Without the lock two writers both load the old file and the second save drops the first's
    names. Nothing is saved when the block raises. ``manifest`` None skips the model check (a
    removal needs no model) and then the gallery must exist.
    """
    path = Path(path)
    with exclusive_lock(lock_path(path)):
        if path.exists() or not create or manifest is None:
            gallery = Gallery.load(path, manifest)
        else:
            gallery = Gallery.new(manifest)
        yield gallery
        gallery.save(path)
