"""Watching the gallery file of a running pipeline, so enrolls and removals apply without a restart.

Polled, not inotify: a stat every half second costs nothing, works on every filesystem (NFS,
bind mounts) and sees the ``os.replace`` of a save as a new (mtime_ns, size, inode).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from stream.errors import FacestreamError
from stream.models.manifest import ModelManifest
from stream.recognize.gallery import Gallery, file_id

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
    def __init__(self, path: Path, manifest: ModelManifest, interval_s: float = 0.5,
                 keep: Path | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.keep = keep  # where the last good gallery is saved for a restarted publisher
        self.interval_s = interval_s
        self.seen = file_id(self.path)  # the file the pipeline started with
        self._next = time.monotonic() + interval_s
        self.reloads = 0

    def poll(self) -> Gallery | None:
        """The gallery when its file changed since the last look (and is usable), else None.

        A file that is gone, unreadable, not exactly a gallery or from another model logs one error
        line and is remembered, so the pipeline keeps the last good gallery without logging every
        poll; the next save that is a good gallery applies as usual.
        """
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.interval_s
        current = file_id(self.path)
        if current == self.seen:
            return None
        if current is None:
            self.seen = None
            log.error("%s: gallery file is gone; kept the last good gallery", self.path)
            return None
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
        log.info("%s: gallery reloaded (%d identities)", self.path, len(gallery.identities()))
        return gallery
