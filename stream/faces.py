"""``Faces``: the one batch type that flows between stages, as validated parallel arrays.

Every stage takes a ``Faces`` and returns a new one (never mutating the caller's arrays):
detections fill ``xyxy``, ``score``, ``keypoints``; alignment adds ``crops``; the engine adds
``embeddings``; the tracker adds ``track_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class LandmarkLayout:
    """What a detector's keypoints are, so that alignment and pose ask for points by name.

    names: the keypoints in array order; "right"/"left" are the subject's (the subject's right eye
    is on the image's left). means: named points a layout gives as the mean of others (an eye's
    centre from its two corners).
    """

    name: str
    names: tuple[str, ...]
    means: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    def has(self, name: str) -> bool:
        return name in self.names or any(name == derived for derived, _ in self.means)

    def point(self, keypoints: np.ndarray, name: str) -> np.ndarray:
        """The point ``name`` of (..., K, 2) keypoints in this layout: (..., 2)."""
        if name in self.names:
            return keypoints[..., self.names.index(name), :]
        for derived, parts in self.means:
            if derived == name:
                return np.mean([keypoints[..., self.names.index(p), :] for p in parts], axis=0)
        raise KeyError(f"the {self.name} landmarks have no {name!r} (they have {', '.join(self.names)})")

    def points(self, keypoints: np.ndarray, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """(..., len(names), 2): the named points of (..., K, 2) keypoints."""
        return np.stack([self.point(keypoints, name) for name in names], axis=-2)


#: MediaPipe's six face keypoints (BlazeFace), in its order: the default layout.
MEDIAPIPE_FACE = LandmarkLayout("mediapipe-6", ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear",
                                                "left_ear"))
NUM_KEYPOINTS = len(MEDIAPIPE_FACE)  # the default layout's


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
    keypoints: (N, K, 2) float32 pixel positions, K the landmarks of ``layout``, in its order.
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
    layout: LandmarkLayout = MEDIAPIPE_FACE

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", np.asarray(self.score, dtype=np.float32).reshape(-1))
        keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, len(self.layout), 2)
        object.__setattr__(self, "keypoints", keypoints)
        tid = np.full(n, -1, np.int64) if self.track_id is None else np.asarray(self.track_id, np.int64)
        object.__setattr__(self, "track_id", tid)
        _check("score", self.score, (None,), n)
        _check("keypoints", self.keypoints, (None, len(self.layout), 2), n)
        _check("track_id", self.track_id, (None,), n)
        _check("crops", self.crops, (None, None, None, 3), n)
        _check("embeddings", self.embeddings, (None, None), n)

    @classmethod
    def empty(cls, layout: LandmarkLayout = MEDIAPIPE_FACE) -> Faces:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, len(layout), 2), np.float32),
                   layout=layout)

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
            layout=self.layout,
        )

    def with_(self, **changes: np.ndarray | None) -> Faces:
        """A copy with some arrays replaced (validated again)."""
        return replace(self, **changes)

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]


def concat_faces(parts: list[Faces]) -> Faces:
    """Detections of several looks at one frame as one ``Faces`` (boxes, scores, keypoints)."""
    found = [p for p in parts if len(p)]
    if not found:
        return Faces.empty(parts[0].layout) if parts else Faces.empty()
    layouts = {p.layout for p in found}
    if len(layouts) > 1:
        names = ", ".join(sorted(x.name for x in layouts))
        raise ValueError(f"cannot join faces of different landmark layouts ({names})")
    parts = found
    if len(parts) == 1:
        return parts[0]
    return Faces(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.score for p in parts]),
                 np.concatenate([p.keypoints for p in parts]), layout=parts[0].layout)
