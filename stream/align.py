"""Face alignment: MediaPipe keypoints -> the model's landmark template, by a similarity warp.

MediaPipe gives eye centres, nose tip and mouth centre (no mouth corners), so we fit on four
correspondences: both eyes, nose, and the template's mouth centre (mean of its two corners).
The template comes from the model manifest; nothing here is model-specific.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from stream.faces import Faces
from stream.images import read_image as read_image  # the one photo reader; here too for old callers
from stream.models.manifest import AlignmentTemplate, ModelManifest

log = logging.getLogger(__name__)

# MediaPipe keypoint indices used for alignment, in template order below.
# MediaPipe's keypoint 0 is the subject's right eye, which is the image-left eye.
_MP_INDICES = (0, 1, 2, 3)


def template_points(template: AlignmentTemplate) -> np.ndarray:
    """The template as the 4 points we can match: left eye, right eye, nose, mouth centre."""
    p = template.points
    mouth = ((p["mouth_left"][0] + p["mouth_right"][0]) / 2, (p["mouth_left"][1] + p["mouth_right"][1]) / 2)
    return np.array([p["left_eye"], p["right_eye"], p["nose"], mouth], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst, as 2x3.

    Closed form (Umeyama 1991). cv2.estimateAffinePartial2D only offers RANSAC/LMEDS, which on
    four points fit a subset instead of all of them.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sigma * sign).sum() / var_s if var_s > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


class FaceAligner:
    """``align(image_bgr, faces) -> faces`` with ``crops`` (N, H, W, 3) uint8 BGR per the manifest."""

    def __init__(self, template: AlignmentTemplate) -> None:
        self.size = (template.width, template.height)
        self._dst = template_points(template)

    @classmethod
    def for_model(cls, manifest: ModelManifest) -> FaceAligner:
        return cls(manifest.alignment)

    def matrices(self, faces: Faces) -> np.ndarray:
        """(N, 2, 3) warps from image to crop."""
        return np.stack([similarity_transform(kp[list(_MP_INDICES)], self._dst) for kp in faces.keypoints]) \
            if len(faces) else np.zeros((0, 2, 3))

    def align(self, image_bgr: np.ndarray, faces: Faces, out: np.ndarray | None = None) -> Faces:
        """Warp each face to the template. ``out`` may be a preallocated (>=N, H, W, 3) uint8 buffer
        (e.g. shared memory); the returned crops are a view of it."""
        w, h = self.size
        n = len(faces)
        crops = np.empty((n, h, w, 3), np.uint8) if out is None else out[:n]
        for i, matrix in enumerate(self.matrices(faces)):
            cv2.warpAffine(image_bgr, matrix, (w, h), dst=crops[i], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return faces.with_(crops=crops)


def _detected(paths: Iterable[Path], detector=None) -> Iterator[tuple[Path, np.ndarray, Faces]]:
    """(path, image, faces) per image, with the photo detector (a full scan); opens and closes
    one of its own unless ``detector`` is given. Images that fail to decode raise."""
    from stream.detect import FaceDetector

    own = detector is None
    detector = detector or FaceDetector()
    try:
        for path in paths:
            image = read_image(path)
            yield Path(path), image, detector.detect(image)
    finally:
        if own:
            detector.close()


def _stacked(crops: list[np.ndarray], aligner: FaceAligner) -> np.ndarray:
    w, h = aligner.size
    return np.stack(crops) if crops else np.zeros((0, h, w, 3), np.uint8)


def load_face_crops(paths: Iterable[Path], manifest: ModelManifest, detector=None) -> np.ndarray:
    """Detect every face in each image and return aligned crops (N, H, W, 3) uint8 BGR.

    Images that fail to decode raise; images without faces contribute nothing (logged).
    """
    aligner = FaceAligner.for_model(manifest)
    crops: list[np.ndarray] = []
    for path, image, faces in _detected(paths, detector):
        faces = aligner.align(image, faces)
        if not len(faces):
            log.info("%s: no face found", path)
        crops.extend(faces.crops)
    return _stacked(crops, aligner)


def choose_face(faces: Faces, image_shape: tuple[int, ...], rule: str) -> int | None:
    """Index of the face an image is about: ``"centre"`` (nearest the image centre, as in LFW's
    centred crops) or ``"largest"`` (largest box); None when there is no face."""
    if not len(faces):
        return None
    if rule == "largest":
        w, h = faces.xyxy[:, 2] - faces.xyxy[:, 0], faces.xyxy[:, 3] - faces.xyxy[:, 1]
        return int(np.argmax(w * h))
    if rule == "centre":
        centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
        image_centre = np.array([image_shape[1], image_shape[0]], np.float32) / 2
        return int(np.argmin(np.linalg.norm(centres - image_centre, axis=1)))
    raise ValueError(f"unknown face rule {rule!r} (centre, largest)")


def load_chosen_crops(paths: Iterable[Path], template: AlignmentTemplate, rule: str = "largest",
                      detector=None) -> tuple[np.ndarray, list[Path]]:
    """One aligned crop per image, the face it is about (``choose_face``), detected and aligned as
    ``load_face_crops`` does: (crops (N, H, W, 3) uint8 BGR in the order of the images found, the
    images where no face was found). ``template``: the model's (``manifest.alignment``)."""
    aligner = FaceAligner(template)
    crops: list[np.ndarray] = []
    missing: list[Path] = []
    for path, image, faces in _detected(paths, detector):
        index = choose_face(faces, image.shape, rule)
        if index is None:
            log.info("%s: no face found", path)
            missing.append(path)
            continue
        crops.append(aligner.align(image, faces[index]).crops[0])
    return _stacked(crops, aligner), missing
