"""dlib's HOG + linear SVM face detector, with its 5-point shape predictor for the landmarks.

Works at the image's own resolution (upsampled once), so it needs no tiles: a face is found when
it is at least ``facts.smallest_face_px`` wide, however large the image. A CPU detector for
photos and modest video; the landmarks say which points they are (``DLIB_5``), so alignment and
pose work from them unchanged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from stream.detect.base import SinglePassDetector, check_bgr, min_score
from stream.detect.dlib.facts import DLIB_HOG, FIVE_POINT_MODEL, UPSAMPLE
from stream.errors import FacestreamError
from stream.faces import Faces
from stream.models.dlib_resnet import package_weights

if TYPE_CHECKING:
    from stream.detect.config import DetectorConfig

log = logging.getLogger(__name__)


class DlibHogDetector(SinglePassDetector):
    facts = DLIB_HOG

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self._detector: Any = None
        self._predictor: Any = None
        # dlib returns SVM margins; detections above the logit of the score threshold are kept.
        p = min_score(self.config, self.facts)
        self._min_margin = -np.inf if p <= 0 else np.inf if p >= 1 else float(np.log(p / (1 - p)))

    def load(self) -> DlibHogDetector:
        if self._detector is None:
            try:
                import dlib
            except ImportError as exc:
                raise FacestreamError(f"detector.kind dlib-hog needs dlib ({exc}): "
                                      "pip install 'facestream[detect-dlib]'") from None
            self._detector = dlib.get_frontal_face_detector()
            self._predictor = dlib.shape_predictor(str(package_weights(FIVE_POINT_MODEL)))
            self._rectangle = dlib.rectangle
            log.info("dlib HOG face detector loaded (5-point landmarks)")
        return self

    def detect_many(self, images: list[np.ndarray], min_face_px: int | None = None) -> list[Faces]:
        for image in images:
            check_bgr(image)
        self.load()
        floor = self.config.min_face_px if min_face_px is None else min_face_px
        return [self._detect(image, floor) for image in images]

    def _detect(self, image: np.ndarray, floor: int) -> Faces:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rects, margins, _ = self._detector.run(rgb, UPSAMPLE, float(np.clip(self._min_margin, -10.0, 10.0)))
        keep = [i for i, m in enumerate(margins) if m >= self._min_margin]
        if not keep:
            return Faces.empty(self.layout)
        h, w = image.shape[:2]
        boxes = np.array([[rects[i].left(), rects[i].top(), rects[i].right() + 1, rects[i].bottom() + 1]
                          for i in keep], np.float32)
        scores = 1.0 / (1.0 + np.exp(-np.array([margins[i] for i in keep], np.float64)))
        keypoints = np.array([[(p.x, p.y) for p in self._predictor(rgb, rects[i]).parts()]
                              for i in keep], np.float32)
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        faces = Faces(boxes, scores, keypoints, layout=self.layout)
        wide = faces.widths >= floor
        return faces if wide.all() else faces[wide]

    def close(self) -> None:
        self._detector = self._predictor = None
