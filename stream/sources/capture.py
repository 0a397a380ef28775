"""Opening an OpenCV capture the same way for every kind of source."""

from __future__ import annotations

import cv2
import numpy as np


def open_ffmpeg(uri: str, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    """A network URI through FFmpeg, with OpenCV's open and read timeouts, so nothing blocks forever."""
    return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                                                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)])


def read_first(cap: cv2.VideoCapture) -> np.ndarray | None:
    """The first frame, or None with the capture released. isOpened() can be True after an open that
    timed out while probing, so only a frame proves the source works."""
    ok, image = cap.read() if cap.isOpened() else (False, None)
    if not ok or image is None:
        cap.release()
        return None
    return image
