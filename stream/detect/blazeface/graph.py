"""MediaPipe BlazeFace detector, short- or full-range, from the models inside the mediapipe wheel.

We drive MediaPipe's legacy ``solutions.face_detection`` graph. The Tasks API ``FaceDetector``
runs the bundled short-range model and gives identical boxes (checked on tests/media), but
fails on the bundled full-range model (``face_detection_full_range_sparse.tflite``: its anchor
count differs from what the Tasks graph assumes), so one code path for both ranges means the
legacy graph. mediapipe 0.10.21 is the last release with these models inside the package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from stream.detect.base import SinglePassDetector, check_bgr, min_score
from stream.detect.blazeface.facts import BLAZEFACE
from stream.errors import FacestreamError
from stream.faces import Faces

if TYPE_CHECKING:
    from stream.detect.config import DetectorConfig

log = logging.getLogger(__name__)


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Mute what MediaPipe's C++ (glog, TFLite) writes straight to file descriptor 2 while its graph
    starts: several lines of INFO/WARNING noise per process that a user cannot act on."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def pyplot_placeholder() -> Iterator[None]:
    """Let mediapipe import without matplotlib.

    mediapipe's package init imports ``matplotlib.pyplot`` for ``drawing_utils.plot_landmarks``
    alone: 0.85 s of its 1.4 s import, on the critical path of every pipeline start. Inside this
    block that import gets a placeholder, removed afterwards so a later real import works. Use it
    only in a process we own (the detect worker): there, mediapipe's ``plot_landmarks`` is unusable.
    """
    if "matplotlib" in sys.modules or "mediapipe" in sys.modules:
        yield
        return
    stub, stub_pyplot = types.ModuleType("matplotlib"), types.ModuleType("matplotlib.pyplot")
    stub.__path__ = []  # a package, so "matplotlib.pyplot" resolves to the placeholder
    stub.pyplot = stub_pyplot  # type: ignore[attr-defined]
    sys.modules["matplotlib"], sys.modules["matplotlib.pyplot"] = stub, stub_pyplot
    try:
        yield
    finally:
        for name, module in (("matplotlib.pyplot", stub_pyplot), ("matplotlib", stub)):
            if sys.modules.get(name) is module:
                del sys.modules[name]


class MediaPipeFaceDetector(SinglePassDetector):
    """One BlazeFace pass: ``detect(image_bgr) -> Faces`` with pixel boxes and MediaPipe's 6 keypoints.

    ``stream.detect.FaceDetector`` builds the tiled scan and the per-track looks on top of this.

    Not thread-safe; make one per process. Construction is cheap; the graph loads on first use.
    The graph fixes its own score threshold (``facts.DEFAULT_MIN_SCORE``); ``min_confidence`` can
    only raise it here.
    """

    def __init__(self, config: DetectorConfig, model: Literal["short", "full"] | None = None) -> None:
        self.config = config
        self.model = model or self.config.model
        self.facts = BLAZEFACE[self.model]
        self._graph = None

    def load(self) -> MediaPipeFaceDetector:
        """Start the graph now (it otherwise starts on the first frame): ~1-2 s."""
        if self._graph is None:
            self._load()
        return self

    def _load(self):
        with native_stderr_silenced(enabled=not log.isEnabledFor(logging.DEBUG)):
            try:
                from mediapipe.python.solutions import face_detection
            except ImportError as exc:  # pragma: no cover - hard dependency
                raise FacestreamError(f"mediapipe is not installed ({exc})") from None
            self._graph = face_detection.FaceDetection(
                model_selection=0 if self.model == "short" else 1,
                min_detection_confidence=min_score(self.config, self.facts),  # ignored by the graph
            )
            # The first inference creates the TFLite delegate, which also prints to stderr.
            self._graph.process(np.zeros((64, 64, 3), np.uint8))
        log.info("MediaPipe face detector loaded (%s range)", self.model)
        return self._graph

    def detect(self, image_bgr: np.ndarray, min_face_px: int | None = None) -> Faces:
        """One pass of the model over the whole image; faces narrower than ``min_face_px`` (default:
        the config's) are dropped."""
        check_bgr(image_bgr)
        graph = self._graph or self._load()
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        result = graph.process(rgb)
        detections = result.detections or []
        if not detections:
            return Faces.empty(self.layout)
        h, w = image_bgr.shape[:2]
        n = len(detections)
        boxes = np.empty((n, 4), np.float32)
        scores = np.empty(n, np.float32)
        keypoints = np.zeros((n, len(self.layout), 2), np.float32)
        for i, det in enumerate(detections):
            loc = det.location_data
            rb = loc.relative_bounding_box
            boxes[i] = (rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h)
            scores[i] = det.score[0]
            for k, kp in enumerate(loc.relative_keypoints[:len(self.layout)]):
                keypoints[i, k] = (kp.x * w, kp.y * h)
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        faces = Faces(boxes, scores, keypoints, layout=self.layout)
        keep = (faces.widths >= (self.config.min_face_px if min_face_px is None else min_face_px)) \
            & (faces.score >= min_score(self.config, self.facts))
        return faces if keep.all() else faces[keep]

    def detect_many(self, images: list[np.ndarray], min_face_px: int | None = None) -> list[Faces]:
        """``detect`` on each image in turn (the graph takes one image a call)."""
        return [self.detect(image, min_face_px) for image in images]

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
