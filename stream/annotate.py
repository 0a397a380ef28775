"""Annotated video: boxes, track ids and names drawn on frames, written to mp4."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from stream.cvpath import opencv_path
from stream.errors import FacestreamError
from stream.faces import Faces

log = logging.getLogger(__name__)

_KNOWN = (60, 200, 60)
_UNKNOWN = (40, 160, 240)

#: privacy.unknowns: blur. The box is grown by this much of its size on every side, since a detector's
#: box stops at the brows and chin and leaves hair, ears and jaw line, which identify people too.
BLUR_MARGIN = 0.3
#: Pixelation cells across the grown box: ~4 across the face itself, too few for a detector or an
#: embedding to find a face in (tests/test_privacy.py checks both on real faces) or a person to know one.
BLUR_CELLS = 6


def blur_boxes(image: np.ndarray, xyxy: np.ndarray, margin: float = BLUR_MARGIN, cells: int = BLUR_CELLS) -> np.ndarray:
    """Pixelate each box (N, 4: x1 y1 x2 y2), grown by ``margin``, of ``image`` in place and return it.

    Pixelation rather than a Gaussian blur: a blur of fixed size is weak on a large face and a strong
    one bleeds across the frame, while cells scale with the box; and unlike a blur it cannot be undone
    by deconvolution, since every cell is one colour.
    """
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(xyxy, np.float64).reshape(-1, 4):
        gx, gy = (x2 - x1) * margin, (y2 - y1) * margin
        left, top = max(int(np.floor(x1 - gx)), 0), max(int(np.floor(y1 - gy)), 0)
        right, bottom = min(int(np.ceil(x2 + gx)), w), min(int(np.ceil(y2 + gy)), h)
        if right <= left or bottom <= top:
            continue
        region = image[top:bottom, left:right]
        # each cell's mean colour, from 8x8 samples of it: INTER_AREA over the whole region costs ~10x
        # more on a large face (a 1080p frame's) and a cell's colour need not be its exact mean
        ny, nx = min(cells, bottom - top), min(cells, right - left)
        sampled = region if region.shape[0] <= 8 * ny and region.shape[1] <= 8 * nx else \
            cv2.resize(region, (8 * nx, 8 * ny), interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(sampled, (nx, ny), interpolation=cv2.INTER_AREA)
        region[...] = cv2.resize(small, (right - left, bottom - top), interpolation=cv2.INTER_NEAREST)
    return image


class Annotator:
    def draw(self, image: np.ndarray, faces: Faces, labels: dict[int, str]) -> np.ndarray:
        """Draw on ``image`` in place and return it."""
        names = [labels.get(int(tid), f"#{tid}") for tid in faces.track_id]
        return self.draw_boxes(image, faces.xyxy, names)

    def draw_boxes(self, image: np.ndarray, xyxy: np.ndarray, labels: list[str]) -> np.ndarray:
        """Draw boxes (N, 4: x1 y1 x2 y2) with their labels on ``image`` in place and return it."""
        for box, label in zip(np.asarray(xyxy).astype(int), labels):
            color = _UNKNOWN if label.endswith("unknown") else _KNOWN
            x1, y1, x2, y2 = box
            cv2.rectangle(image, (x1, y1), (x2, y2), color, 2)
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            top = max(y1 - th - 6, 0)
            left = max(min(x1, image.shape[1] - tw - 4), 0)  # a face at the right edge keeps its name in view
            cv2.rectangle(image, (left, top), (left + tw + 4, top + th + 6), color, -1)
            cv2.putText(image, label, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                        cv2.LINE_AA)
        return image


class VideoAnnotationWriter:
    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = size
        self._writer = cv2.VideoWriter(opencv_path(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, size)
        if not self._writer.isOpened():
            raise FacestreamError(f"{self.path}: cannot write video here")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()
