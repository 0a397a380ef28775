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


class GalleryWatcher:
    def __init__(self, path: Path, manifest: ModelManifest, interval_s: float = 0.5) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.interval_s = interval_s
        self.seen = file_id(self.path)  # the file the pipeline started with
        self._next = time.monotonic() + interval_s
        self.reloads = 0

    def poll(self) -> Gallery | None:
        """The gallery when its file changed since the last look (and is usable), else None.

        A file that is gone, unreadable or from another model logs one error line and is
        remembered, so the pipeline keeps its current gallery without logging every poll.
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
            log.error("%s: gallery file is gone; keeping the loaded gallery", self.path)
            return None
        try:
            gallery = Gallery.load(self.path, self.manifest)
        except FacestreamError as exc:
            self.seen = current
            log.error("%s; keeping the loaded gallery", exc)
            return None
        # Replaced again while it was read: the next poll loads the newer file.
        self.seen = current if file_id(self.path) == current else None
        self.reloads += 1
        log.info("%s: gallery reloaded (%d identities)", self.path, len(gallery.identities()))
        return gallery
