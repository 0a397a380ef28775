"""Face alignment: the detector's named landmarks -> the model's landmark template, by a similarity warp.

BlazeFace gives eye centres, nose tip and mouth centre (no mouth corners), so we fit on four
correspondences: both eyes, nose, and the template's mouth centre (mean of its two corners).
The template comes from the model manifest; nothing here is model-specific.
"""

from __future__ import annotations

import cv2
import numpy as np

from stream.faces import Faces
from stream.models.manifest import AlignmentTemplate, ModelManifest

# The detector's landmark for each template point, in ``template_points`` order. The template names
# sides as the image shows them, the detectors as the subject has them: the subject's right eye is
# the image's left one. A layout without nose tip or mouth centre (dlib's five points) is fitted on
# the points it has; the eyes are needed.
_TEMPLATE_LANDMARKS = ("right_eye", "left_eye", "nose_tip", "mouth_center")


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
        if not len(faces):
            return np.zeros((0, 2, 3))
        used = [i for i, name in enumerate(_TEMPLATE_LANDMARKS) if faces.layout.has(name)]
        src = faces.layout.points(faces.keypoints, [_TEMPLATE_LANDMARKS[i] for i in used])
        return np.stack([similarity_transform(points, self._dst[used]) for points in src])

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

