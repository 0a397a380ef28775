"""Video files, on disk or served over HTTP: every frame (or those of a processing rate, evenly by
their pts), in order, as fast as possible or paced at the file's own rate."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from stream.cvpath import opencv_path
from stream.errors import FacestreamError
from stream.frames import Frame
from stream.sources.base import SourceStats
from stream.sources.capture import open_capture, open_ffmpeg, read_first
from stream.sources.rate import FrameRate
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)


class FileSource:
    def __init__(self, spec: SourceSpec, *, realtime: bool = False, open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0, start_frame: int = 0, fps: float | None = None) -> None:
        self.spec = spec
        self.rate = FrameRate(fps) if fps else None  # None: every frame
        self.realtime = realtime
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s  # remote files only
        self.fps = 0.0
        self.width = self.height = 0
        self.frame_count = 0
        self.stats = SourceStats()
        self._cap: cv2.VideoCapture | None = None
        self._first = None
        self._t0: float | None = None
        self._index = 0
        self.start_frame = start_frame  # a restarted reader resumes the file here
        self.skipped = 0  # frames before start_frame it could not position on (0 when the seek is exact)

    def open(self) -> None:
        if self.spec.remote:
            cap = open_ffmpeg(self.spec.uri, self.open_timeout_s, self.read_timeout_s)
            problem = "cannot connect, or not a video OpenCV can decode"
        else:
            path = Path(self.spec.uri)
            if not path.exists():
                raise FacestreamError(f"{self.spec.uri}: not found")
            if not path.is_file():
                raise FacestreamError(f"{self.spec.uri}: not a file")
            cap = open_capture(opencv_path(path), cv2.CAP_ANY, [])
            problem = "not a video OpenCV can decode"
        image = read_first(cap)
        if image is None:
            raise FacestreamError(f"{self.spec.display}: {problem}")
        self._cap = cap
        self._first = (image, self._pts_now(cap, 0))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        self.height, self.width = image.shape[:2]
        if self.start_frame > 0:
            self._resume(self.start_frame)
        log.info("%s: %dx%d, %.2f fps, %d frames", self.spec.name, self.width, self.height, self.fps, self.frame_count)

    def _resume(self, index: int) -> None:
        """Position on frame ``index``: a seek, checked; else decode forward to it (exact, slower)."""
        cap = self._cap
        assert cap is not None
        if cap.set(cv2.CAP_PROP_POS_FRAMES, index):
            ok, image = cap.read()
            if ok and image is not None and int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index + 1:
                self._first, self._index = (image, self._pts_now(cap, index)), index
                log.info("%s: resumed at frame %d", self.spec.name, index)
                return
        cap.release()  # where a failed seek left it is unknown: start over and count
        self._cap = None
        self.start_frame = 0
        self.open()
        cap = self._cap
        self._first, self._index = None, 1
        while self._index < index and cap.grab():
            self._index += 1
        self.skipped = index - self._index
        log.info("%s: resumed at frame %d by decoding forward", self.spec.name, self._index)

    def read(self, timeout: float | None = None) -> Frame | None:
        if self._cap is None:
            return None
        if self._first is not None:
            (image, pts), self._first = self._first, None
            if self.rate is not None:
                self.rate.take(pts)  # the first frame is always taken: it starts the rate's grid
        else:
            taken = self._next_taken()
            if taken is None:
                self._check_complete()
                return None
            image, pts = taken
        if self.realtime:
            self._pace(pts)
        frame = Frame(self.spec.name, self._index, pts, time.time(), image)
        self._index += 1
        self.stats.frames_read += 1
        return frame

    def _next_taken(self) -> tuple[np.ndarray, float] | None:
        """The next frame to process and its pts; frames the rate skips are only grabbed (demuxed and
        decoded by FFmpeg, never converted to BGR nor copied), numbered and counted."""
        cap = self._cap
        assert cap is not None
        if self.rate is None:
            ok, image = cap.read()
            return (image, self._pts_now(cap, self._index)) if ok and image is not None else None
        while cap.grab():
            pts = self._pts_now(cap, self._index)
            if self.rate.take(pts):
                ok, image = cap.retrieve()
                return (image, pts) if ok and image is not None else None
            self._index += 1
            self.stats.frames_skipped += 1
        return None

    def _check_complete(self) -> None:
        """A remote file whose connection broke ends early: say so, rather than pass it off as the end.
        (Container frame counts are estimates, hence the slack.)"""
        missing = self.frame_count - self._index
        if self.spec.remote and missing > max(2, self.frame_count // 100):
            self.stats.last_error = f"ended after frame {self._index} of {self.frame_count}"
            raise FacestreamError(f"{self.spec.display}: the connection ended after frame {self._index} of "
                                  f"{self.frame_count}")

    def _pts_now(self, cap: cv2.VideoCapture, index: int) -> float:
        """Presentation time of the frame just read; index/fps where the container has none."""
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        if msec > 0 or index == 0:
            return max(msec, 0.0) / 1e3
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        return index / fps if fps > 0 else 0.0

    def _pace(self, pts: float) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - pts
        delay = self._t0 + pts - now
        if delay > 0:
            time.sleep(delay)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
