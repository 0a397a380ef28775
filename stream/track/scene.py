"""Scene cuts and camera jumps: the moments when no track may carry over to the next frame.

A cut changes a whole picture at once, both its brightness pixel by pixel and its colour
distribution; motion, a face walking by or a light change alter one but rarely both. So a cut
needs both: the mean absolute difference of gray levels above ``min_change`` and the
hue-saturation histograms' correlation below ``max_similarity``, between this frame and the last.
On the Hamilton clip its three real cuts (frames 20, 82, 211) score 27-30 and 0.48-0.66; every
other frame at most 13.6 and at least 0.91.

The picture is the whole frame and, separately, the region around the live tracks: a video shown
small inside a larger frame (a picture-in-picture, a monitor in view, the clip on a 1080p canvas)
cuts there while the rest of the frame stays still. Both are measured on a reduced copy of the
frame, 320-639 px wide, made by exact halvings (1.0 ms for a 1080p frame on one core, where one
INTER_AREA resize to 320 px takes 3.3 ms).
"""

from __future__ import annotations

import cv2
import numpy as np

_WORK_WIDTH = 320  # the reduced copy is at least this wide
_BINS = [16, 8]
_RANGES = [0, 180, 0, 256]
_MIN_REGION = 12  # pixels of the reduced copy; smaller regions say nothing reliable


class SceneCutDetector:
    def __init__(self, min_change: float = 18.0, max_similarity: float = 0.8) -> None:
        self.min_change = min_change
        self.max_similarity = max_similarity
        self._previous: _Picture | None = None
        self.gray: np.ndarray | None = None  # the last frame's reduced gray copy (int16)
        self.scale = 1.0
        self.last_change = 0.0
        self.last_similarity = 1.0

    def is_cut(self, image_bgr: np.ndarray, boxes: np.ndarray | None = None) -> bool:
        """True when this frame starts a new scene, in the whole frame or around ``boxes`` (the live
        tracks' (K, 4) boxes, frame pixels). Never for the first frame."""
        small = reduced(image_bgr)
        if small is image_bgr:  # kept for its colours, which may be read a frame later: not the caller's buffer
            small = small.copy()
        scale = small.shape[1] / image_bgr.shape[1]
        current = _Picture(small)
        previous, self._previous = self._previous, current
        self.gray, self.scale = current.gray, scale  # the reduced copy, also for the scan's motion test
        if previous is None or previous.gray.shape != current.gray.shape:
            return False
        self.last_change = float(np.abs(current.gray - previous.gray).mean())
        # The colours are looked at only when the gray levels changed enough for a cut: a still or
        # calm frame (nearly all of them) costs its gray copy alone.
        self.last_similarity = 1.0
        if self.last_change > self.min_change:
            self.last_similarity = float(cv2.compareHist(previous.hist, current.hist, cv2.HISTCMP_CORREL))
            if self._is_cut(self.last_change, self.last_similarity):
                return True
        region = _around(boxes, scale, current.gray.shape) if boxes is not None and len(boxes) else None
        if region is None:
            return False
        change = float(np.abs(current.gray[region] - previous.gray[region]).mean())
        if change <= self.min_change:
            return False
        similarity = float(cv2.compareHist(_histogram(previous.hsv[region]), _histogram(current.hsv[region]),
                                           cv2.HISTCMP_CORREL))
        return self._is_cut(change, similarity)

    def _is_cut(self, change: float, similarity: float) -> bool:
        return change > self.min_change and similarity < self.max_similarity


def reduced(image: np.ndarray, min_width: int = _WORK_WIDTH) -> np.ndarray:
    """The image halved (INTER_AREA) while it stays at least ``min_width`` wide. OpenCV averages
    an exact halving in a fast path, so a few of them cost less than one resize by an odd factor."""
    while image.shape[1] >= 2 * min_width and image.shape[0] >= 2:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return image


def reduced_size(width: int, height: int, min_width: int = _WORK_WIDTH) -> tuple[int, int]:
    """The (width, height) ``reduced`` gives an image of this size."""
    while width >= 2 * min_width and height >= 2:
        width, height = width // 2, height // 2
    return width, height


class _Picture:
    """A frame's reduced copy as the cut test reads it; its colours (HSV, the whole-frame histogram)
    are computed on first use, once."""

    def __init__(self, small_bgr: np.ndarray) -> None:
        self._bgr = small_bgr
        self.gray = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY).astype(np.int16)
        self._hsv: np.ndarray | None = None
        self._hist: np.ndarray | None = None

    @property
    def hsv(self) -> np.ndarray:
        if self._hsv is None:
            self._hsv = cv2.cvtColor(self._bgr, cv2.COLOR_BGR2HSV)
        return self._hsv

    @property
    def hist(self) -> np.ndarray:
        if self._hist is None:
            self._hist = _histogram(self.hsv)
        return self._hist


def _histogram(hsv: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([np.ascontiguousarray(hsv)], [0, 1], None, _BINS, _RANGES)
    cv2.normalize(hist, hist)
    return hist


def _around(boxes: np.ndarray, scale: float, shape: tuple[int, ...]) -> tuple[slice, slice] | None:
    """The reduced copy's region covering the boxes, each grown by its size on every side."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4) * scale
    size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])[:, None]
    x1, y1 = np.floor((b[:, :2] - size).min(axis=0)).astype(int)
    x2, y2 = np.ceil((b[:, 2:] + size).max(axis=0)).astype(int)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(shape[1], x2), min(shape[0], y2)
    if x2 - x1 < _MIN_REGION or y2 - y1 < _MIN_REGION:
        return None
    return slice(y1, y2), slice(x1, x2)
