"""BlazeFace as an ONNX network: MediaPipe's own weights, MediaPipe's own pre- and post-processing.

The network is MediaPipe's ``.tflite`` converted once to ONNX (``convert``, cached in the
engines dir). Around it this module does what MediaPipe's face-detection graph does: letterbox
the image into the square input (RGB in [-1, 1]), decode the SSD anchors' box and keypoint
offsets, a sigmoid score, and MediaPipe's weighted NMS (boxes that overlap the best one by IoU >
0.3 are averaged into it, weighted by score). Checked against the MediaPipe graph on tests/media.

Several images go through in one batched call (``detect_many``): the tiles of a scan cost one
inference call instead of one graph round trip each. The network runs through
``stream.inference.network``: ONNX Runtime on the CPU, or TensorRT on a GPU (``detector.runtime``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from stream.detect.base import SinglePassDetector, check_bgr, min_score
from stream.detect.blazeface.facts import BLAZEFACE
from stream.errors import FacestreamError, ModelError
from stream.faces import Faces
from stream.inference.network import Network, NetworkSpec
from stream.inference.select import create_network

if TYPE_CHECKING:
    from stream.detect.config import DetectorConfig

log = logging.getLogger(__name__)

_MODULES = Path("mediapipe") / "modules" / "face_detection"
NMS_IOU = 0.3  # MediaPipe's face-detection graph: NonMaxSuppressionCalculator, WEIGHTED
CONVERTER_VERSION = 1  # in the cache file's name: bump when blazeface_convert's output changes
_SCORE_CLIP = 100.0
#: largest batch of one network call: the scan sends at most its 64 tiles a call (``scan._BATCH_TILES``)
MAX_BATCH = 64


@dataclass(frozen=True)
class BlazeFaceModel:
    """The facts of one BlazeFace variant, as MediaPipe's graph configures it."""

    name: Literal["short", "full"]
    tflite: str
    input_px: int
    strides: tuple[int, ...]  # SSD layers; consecutive equal strides share one feature map
    anchors_per_layer: int  # 2 with MediaPipe's interpolated-scale anchor, else 1

    def anchors(self) -> np.ndarray:
        """(A, 2) anchor centres in [0, 1], in the network's output order."""
        centres = []
        layer = 0
        while layer < len(self.strides):
            stride = self.strides[layer]
            same = 0
            while layer < len(self.strides) and self.strides[layer] == stride:
                same += 1
                layer += 1
            cells = -(-self.input_px // stride)
            ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
            grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
            centres.append(np.repeat(grid, same * self.anchors_per_layer, axis=1).reshape(-1, 2))
        return np.concatenate(centres).astype(np.float32)


MODELS = {
    "short": BlazeFaceModel("short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": BlazeFaceModel("full", "face_detection_full_range_sparse.tflite", 192, (4,), 1),
}


def tflite_path(model: BlazeFaceModel) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FacestreamError("mediapipe is not installed (its wheel carries the BlazeFace models)")
    path = Path(next(iter(spec.submodule_search_locations))).parent / _MODULES / model.tflite
    if not path.is_file():
        raise ModelError(f"{path}: BlazeFace model missing from the mediapipe package")
    return path


def onnx_path(model: BlazeFaceModel, cache_dir: Path | None = None) -> Path:
    """The converted model, built once per tflite file (its sha256 names the cache entry)."""
    from stream.locking import exclusive_lock
    from stream.models.store import default_engines_dir

    source = tflite_path(model)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    directory = Path(cache_dir) if cache_dir is not None else default_engines_dir() / "detectors"
    target = directory / f"blazeface-{model.name}-{digest}-v{CONVERTER_VERSION}.onnx"
    if target.is_file():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{directory}: cannot create the detector cache ({exc.strerror})") from None
    with exclusive_lock(directory / ".lock"):
        if not target.is_file():
            import onnx

            from stream.detect.blazeface.convert import convert_tflite

            log.info("converting %s to ONNX (once) into %s", source.name, target)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            onnx.save(convert_tflite(source), str(tmp))
            os.replace(tmp, target)
    return target


def letterbox(image_bgr: np.ndarray, size: int, out: np.ndarray) -> float:
    """Fit the image centred into ``out`` (size, size, 3) uint8 BGR with black borders, as MediaPipe's
    ImageToTensor does (the ONNX graph scales it to RGB in [-1, 1]); returns the square's side in image
    pixels."""
    h, w = image_bgr.shape[:2]
    side = float(max(h, w))
    k = size / side
    # Corner to corner (no half-pixel shift): what MediaPipe's warp does, its scores reproduced exactly.
    tx = (size - k * w) / 2
    ty = (size - k * h) / 2
    matrix = np.array([[k, 0, tx], [0, k, ty]], np.float64)
    cv2.warpAffine(image_bgr, matrix, (size, size), dst=out, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return side


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 iou: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each best remaining box absorbs those overlapping it by
    IoU > ``iou``; its box and keypoints become their score-weighted mean, its score stays its own."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    remaining = np.arange(len(scores))
    out_b, out_s, out_k = [], [], []
    while len(remaining):
        best = remaining[0]
        b = boxes[remaining]
        iw = np.clip(np.minimum(b[:, 2], boxes[best, 2]) - np.maximum(b[:, 0], boxes[best, 0]), 0, None)
        ih = np.clip(np.minimum(b[:, 3], boxes[best, 3]) - np.maximum(b[:, 1], boxes[best, 1]), 0, None)
        inter = iw * ih
        union = areas[remaining] + areas[best] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        group = remaining[overlap > iou]
        if len(group) == 0:
            group = remaining[:1]
        weights = scores[group][:, None]
        total = weights.sum()
        out_b.append((boxes[group] * weights).sum(axis=0) / total)
        out_k.append((keypoints[group] * weights[:, :, None]).sum(axis=0) / total)
        out_s.append(scores[best])
        remaining = remaining[overlap <= iou]
        remaining = remaining[remaining != best]
    return np.array(out_b, np.float32), np.array(out_s, np.float32), np.array(out_k, np.float32)


class BlazeFaceOnnxDetector(SinglePassDetector):
    """One BlazeFace pass per image (batched) on the ONNX network, the same faces as ``MediaPipeFaceDetector``."""

    def __init__(self, config: DetectorConfig, model: Literal["short", "full"] | None = None,
                 cache_dir: Path | None = None) -> None:
        self.config = config
        self.model = model or self.config.model
        self.facts = BLAZEFACE[self.model]
        self.spec = MODELS[self.model]
        self.cache_dir = cache_dir
        self._network: Network | None = None
        self._anchors = self.spec.anchors()
        p = min_score(self.config, self.facts)
        self._min_logit = -np.inf if p <= 0 else np.inf if p >= 1 else float(np.log(p / (1 - p)))
        self._buffer = np.empty((0, self.spec.input_px, self.spec.input_px, 3), np.uint8)

    def network_spec(self) -> NetworkSpec:
        """The converted network (converting it now if it is not cached yet)."""
        size = self.spec.input_px
        return NetworkSpec(name=f"blazeface-{self.model}", onnx_path=onnx_path(self.spec, self.cache_dir),
                           input_name="input", sample_shape=(size, size, 3), input_dtype="uint8",
                           output_names=("regressors", "classificators"))

    def load(self) -> BlazeFaceOnnxDetector:
        if self._network is None:
            spec = self.network_spec()
            runtime = "tensorrt" if self.config.runtime == "tensorrt" else "onnxruntime"
            # One ONNX Runtime thread: the detect worker is one of several busy processes sharing the
            # cores. TensorRT: the profile covers the scan's largest batch of tiles.
            self._network = create_network(spec, runtime, max_batch=MAX_BATCH, threads=1).load()
            log.info("BlazeFace %s-range detector loaded (%s, %s)", self.model, self._network.backend,
                     spec.onnx_path.name)
        return self

    def detect_many(self, images: list[np.ndarray], min_face_px: int | None = None) -> list[Faces]:
        """One batched pass over several images; faces narrower than ``min_face_px`` (default: the
        config's) are dropped."""
        if not images:
            return []
        for image in images:
            check_bgr(image)
        network = self._network or self.load()._network
        size = self.spec.input_px
        if len(self._buffer) < len(images):
            self._buffer = np.empty((len(images), size, size, 3), np.uint8)
        batch = self._buffer[:len(images)]
        sides = np.array([letterbox(image, size, batch[i]) for i, image in enumerate(images)], np.float32)
        regressors, logits = network.run(batch)
        floor = self.config.min_face_px if min_face_px is None else min_face_px
        return [self._decode(regressors[i], logits[i, :, 0], images[i], sides[i], floor) for i in range(len(images))]

    def _decode(self, raw: np.ndarray, logits: np.ndarray, image: np.ndarray, side: float, floor: int) -> Faces:
        # Threshold the logits (sigmoid is monotonic): the sigmoid is then taken of a handful only.
        hits = np.flatnonzero(logits >= self._min_logit)
        if not len(hits):
            return Faces.empty(self.layout)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits].astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)))
        size = self.spec.input_px
        raw, anchors = raw[hits] / size, self._anchors[hits]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        k = len(self.layout)
        keypoints = raw[:, 4:4 + 2 * k].reshape(-1, k, 2) + anchors[:, None]
        boxes, kept, keypoints = weighted_nms(boxes, scores.astype(np.float32), keypoints)
        h, w = image.shape[:2]
        offset = np.array([(side - w) / 2, (side - h) / 2], np.float32)
        boxes = boxes * side - np.tile(offset, 2)
        keypoints = keypoints * side - offset
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        faces = Faces(boxes, kept, keypoints, layout=self.layout)
        keep = faces.widths >= floor
        return faces if keep.all() else faces[keep]

    def close(self) -> None:
        if self._network is not None:
            self._network.close()
            self._network = None
