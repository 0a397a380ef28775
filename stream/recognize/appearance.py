"""Per-track appearance: a quality-weighted mean of the track's embeddings, and when it is broken.

The mean serves twice. It is matched against the gallery as one similarity per track (the
video-level protocol of FaceNet's YouTube Faces result), which a sharp, frontal frame dominates
over a dozen blurred, turned ones. And a new embedding far from it means the tracker linked the
box to another person (two faces crossing, one hiding the other): the track is split there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stream.faces import Faces

if TYPE_CHECKING:
    from stream.models.manifest import ModelManifest


class AppearanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    split_factor: float = Field(
        default=1.25, gt=0.0, le=10.0,
        description="a track is split when a new embedding is farther than this many match thresholds from "
                    "the track's mean: it has taken another person's face",
    )
    min_observations: int = Field(default=2, ge=1, le=1000,
                                  description="embeddings a track needs before its mean can split it")
    aggregate: bool = Field(
        default=False,
        description="also name an undecided track whose quality-weighted mean embedding matches the gallery. "
                    "A mean of poor embeddings drifts toward every face, so it can name false detections "
                    "(why it is off: docs/benchmarks.md)",
    )


def face_quality(faces: Faces, full_weight_px: float = 80.0) -> np.ndarray:
    """(N,) 0..1: how much an embedding of each face is worth, from its size and head pose.

    Pose from the detector's landmarks: the nose's sideways offset from the eyes' midpoint, in eye
    distances, grows as the head turns (0 frontal, ~0.5 near profile); eyes closer than a fifth
    of the box width also mean a profile.
    """
    if not len(faces):
        return np.zeros(0, np.float32)
    layout = faces.layout
    right_eye, left_eye = layout.point(faces.keypoints, "right_eye"), layout.point(faces.keypoints, "left_eye")
    # Tip or base: either lies on the face's midline, all the sideways offset needs.
    nose = layout.point(faces.keypoints, "nose_tip" if layout.has("nose_tip") else "nose_base")
    eyes_mid = (right_eye + left_eye) / 2
    eye_dist = np.linalg.norm(right_eye - left_eye, axis=1)
    widths = np.maximum(faces.widths, 1.0)
    yaw = np.abs(nose[:, 0] - eyes_mid[:, 0]) / np.maximum(eye_dist, 1.0)
    pose = np.clip(1.0 - yaw / 0.6, 0.1, 1.0) * np.clip(eye_dist / (0.3 * widths), 0.2, 1.0)
    size = np.clip(widths / full_weight_px, 0.1, 1.0)
    return (pose * size).astype(np.float32)


def blur_quality(crops: np.ndarray, sharp: float = 150.0) -> np.ndarray:
    """(K,) 0..1 from the variance of each aligned crop's Laplacian (low = blurred)."""
    out = np.empty(len(crops), np.float32)
    for i, crop in enumerate(crops):
        out[i] = min(1.0, max(0.1, float(_laplacian(_gray(crop)).var()) / sharp))
    return out


# OpenCV's BGR->gray and 3x3 Laplacian, exactly (tested against cv2): computed here so that the
# publisher, the one caller, never loads OpenCV (its import is ~0.1 s of CPU at every start, on 2
# cores shared by 5 processes); 0.3 ms a 150 px crop against OpenCV's 0.17, for the few embedded.
_GRAY_WEIGHTS = (3735, 19235, 9798)  # B, G, R in 1/2**15: cv2's fixed-point BT.601


def _gray(bgr: np.ndarray) -> np.ndarray:
    b, g, r = (bgr[..., k].astype(np.int32) for k in range(3))
    wb, wg, wr = _GRAY_WEIGHTS
    return (b * wb + g * wg + r * wr + (1 << 14)) >> 15


def _laplacian(gray: np.ndarray) -> np.ndarray:
    """cv2.Laplacian(gray, CV_32F) with ksize 1: the 4-neighbour kernel, reflect-101 borders."""
    p = np.pad(gray, 1, mode="reflect")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    return lap.astype(np.float32)


class TrackAppearance:
    def __init__(self, manifest: ModelManifest) -> None:
        self.manifest = manifest
        self.normalized = manifest.output_normalized or manifest.metric == "cosine"
        self._sum: np.ndarray | None = None
        self.weight = 0.0
        self.count = 0

    @property
    def mean(self) -> np.ndarray | None:
        if self._sum is None or self.weight <= 0:
            return None
        mean = self._sum / self.weight
        if self.normalized:
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return mean.astype(np.float32)

    def distance(self, embedding: np.ndarray) -> float:
        """Distance of an embedding to the mean under the model's metric (inf before the first)."""
        mean = self.mean
        if mean is None:
            return float("inf")
        return float(self.manifest.distances(np.asarray(embedding, np.float32)[None], mean[None])[0, 0])

    def add(self, embedding: np.ndarray, quality: float) -> None:
        w = max(float(quality), 1e-3)
        e = np.asarray(embedding, np.float64)
        self._sum = e * w if self._sum is None else self._sum + e * w
        self.weight += w
        self.count += 1
