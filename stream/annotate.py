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
