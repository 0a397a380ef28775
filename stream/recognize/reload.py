"""Watching the gallery file of a running pipeline, so enrolls and removals apply without a restart.

Polled, not inotify: a stat every half second costs nothing, works on every filesystem (NFS,
bind mounts) and sees the ``os.replace`` of a save as a new (mtime_ns, size, inode).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from stream.errors import FacestreamError
from stream.models.manifest import ModelManifest
from stream.recognize.gallery import FileId, Gallery, file_id
from stream.recognize.gallery_index import GallerySearchConfig, index_dir

log = logging.getLogger(__name__)


def load_or_last_good(path: Path, manifest: ModelManifest, keep: Path | None) -> Gallery:
    """The gallery a publisher starts with: the file, remembered in ``keep`` as the last good one.

    A publisher restarted after the file was replaced by one that is not a gallery (the run
    checked it at start) starts from ``keep`` instead of failing at every restart.
    """
    try:
        gallery = Gallery.load(path, manifest)
    except FacestreamError as exc:
        if keep is None or not keep.is_file():
            raise
        log.error("%s; kept the last good gallery", exc)
        return Gallery.load(keep, manifest)
    _remember(gallery, keep)
    return gallery


def _remember(gallery: Gallery, keep: Path | None) -> None:
    if keep is not None:
        try:
            gallery.save(keep)
        except OSError as exc:  # only a restart would miss it; the run goes on
            log.warning("%s: cannot keep a copy of the gallery (%s)", keep, exc)


class GalleryWatcher:
    """Polls the gallery's files; ``poll`` hands over a changed gallery ready to match.

    With ``background`` the load (and the index build of a large gallery) runs in a thread and
    ``poll`` returns the gallery once it is ready: a 1M-entry gallery takes seconds to load and
    index, and the pipeline matches with the old one meanwhile. Without it (tests, tools) the load
    happens inside ``poll``.
    """

    def __init__(self, path: Path, manifest: ModelManifest, interval_s: float = 0.5,
                 keep: Path | None = None, search: GallerySearchConfig | None = None,
                 background: bool = False, initial: Gallery | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.keep = keep  # where the last good gallery is saved for a restarted publisher
        self.interval_s = interval_s
        self.search = search or GallerySearchConfig()
        self.background = background
        self.seen = file_id(self.path)  # the files the pipeline started with
        self._next = time.monotonic() + interval_s
        self.reloads = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready: Gallery | None = None
        if initial is not None:
            # the gallery the run started with matches exactly until its index is ready
            self._start(lambda: self._prepare(initial) and None)

    def _prepare(self, gallery: Gallery) -> Gallery:
        try:
            gallery.prepare(self.search, index_dir(self.path))
        except Exception:  # an index is an optimisation: exact search is always right
            log.exception("%s: cannot build the gallery index; exact search", self.path)
        return gallery

    def _start(self, job: Callable[[], Gallery | None]) -> None:
        def run() -> None:
            result = job()
            with self._lock:
                if result is not None:
                    self._ready = result

        if not self.background:
            run()
            return
        self._thread = threading.Thread(target=run, name="gallery-reload", daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Until a background load or index build finished (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def poll(self) -> Gallery | None:
        """The gallery when its files changed since the last look (and are usable), else None.

        A file that is gone, unreadable, not exactly a gallery or from another model logs one error
        line and is remembered, so the pipeline keeps the last good gallery without logging every
        poll; the next save that is a good gallery applies as usual.
        """
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            return ready
        now = time.monotonic()
        if now < self._next or self.busy():
            return None
        self._next = now + self.interval_s
        current = file_id(self.path)
        if current == self.seen:
            return None
        if current is None:
            self.seen = None
            log.error("%s: gallery file is gone; kept the last good gallery", self.path)
            return None
        self._start(lambda: self._load(current))
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def _load(self, current: FileId) -> Gallery | None:
        try:
            gallery = Gallery.load(self.path, self.manifest)
        except FacestreamError as exc:
            self.seen = current
            log.error("%s; kept the last good gallery", exc)
            return None
        # Replaced again while it was read: the next poll loads the newer file.
        self.seen = current if file_id(self.path) == current else None
        self.reloads += 1
        _remember(gallery, self.keep)
        self._prepare(gallery)
        log.info("%s: gallery reloaded (%d identities)", self.path, len(gallery.identities()))
        return gallery
