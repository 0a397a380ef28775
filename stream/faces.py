"""``Faces``: the one batch type that flows between stages, as validated parallel arrays.

Every stage takes a ``Faces`` and returns a new one (never mutating the caller's arrays):
detections fill ``xyxy``, ``score``, ``keypoints``; alignment adds ``crops``; the engine adds
``embeddings``; the tracker adds ``track_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: MediaPipe's six face keypoints, in its order. "right"/"left" are the subject's.
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
NUM_KEYPOINTS = len(KEYPOINT_NAMES)


def _check(name: str, arr: np.ndarray | None, shape: tuple[int | None, ...], n: int) -> None:
    if arr is None:
        return
    expected = tuple(n if i == 0 else s for i, s in enumerate(shape))
    ok = arr.ndim == len(shape) and all(e is None or a == e for a, e in zip(arr.shape, expected))
    if not ok:
        dims = ["*" if e is None else str(e) for e in expected]
        pretty = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        raise ValueError(f"Faces.{name} must have shape {pretty}; got {arr.shape}")


@dataclass(frozen=True)
class Faces:
    """N faces of one frame.

    xyxy: (N, 4) float32 pixel boxes [x1, y1, x2, y2].
    score: (N,) float32 detector confidence.
    keypoints: (N, 6, 2) float32 pixel positions, in ``KEYPOINT_NAMES`` order.
    track_id: (N,) int64, -1 while unassigned.
    crops: (N, H, W, 3) uint8 aligned BGR crops, or None.
    embeddings: (N, D) float32, or None.
    """

    xyxy: np.ndarray
    score: np.ndarray
    keypoints: np.ndarray
    track_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    crops: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", np.asarray(self.score, dtype=np.float32).reshape(-1))
        keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2)
        object.__setattr__(self, "keypoints", keypoints)
        tid = np.full(n, -1, np.int64) if self.track_id is None else np.asarray(self.track_id, np.int64)
        object.__setattr__(self, "track_id", tid)
        _check("score", self.score, (None,), n)
        _check("keypoints", self.keypoints, (None, NUM_KEYPOINTS, 2), n)
        _check("track_id", self.track_id, (None,), n)
        _check("crops", self.crops, (None, None, None, 3), n)
        _check("embeddings", self.embeddings, (None, None), n)

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, NUM_KEYPOINTS, 2), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | list[int] | int) -> Faces:
        """Select faces by boolean mask, index array or slice; always returns ``Faces``."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Faces(
            xyxy=self.xyxy[index],
            score=self.score[index],
            keypoints=self.keypoints[index],
            track_id=self.track_id[index],
            crops=None if self.crops is None else self.crops[index],
            embeddings=None if self.embeddings is None else self.embeddings[index],
        )

    def with_(self, **changes: np.ndarray | None) -> Faces:
        """A copy with some arrays replaced (validated again)."""
        return replace(self, **changes)

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]


def concat_faces(parts: list[Faces]) -> Faces:
    """Detections of several looks at one frame as one ``Faces`` (boxes, scores, keypoints)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Faces.empty()
    if len(parts) == 1:
        return parts[0]
    return Faces(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.score for p in parts]),
                 np.concatenate([p.keypoints for p in parts]))
