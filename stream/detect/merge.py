"""One box per face from overlapping looks (tiles, whole frame, track crops)."""

from __future__ import annotations

import numpy as np

from stream.faces import Faces


def overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area, (N, 4) x (M, 4) xyxy.

    Unlike IoU it is ~1 for a half face cut by a tile edge against the whole face, so the two
    merge instead of counting as two faces.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return (inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)).astype(np.float32)


def merge_faces(faces: Faces, cut: np.ndarray | None = None, overlap: float = 0.5) -> Faces:
    """Greedy NMS over ``overlap_of_smaller``: the best look of each face survives.

    cut: (N,) bool, detections touching an inner tile edge; they rank below whole looks of the
    same face, since their box and keypoints describe only part of it.
    """
    if len(faces) <= 1:
        return faces
    rank = faces.score - (cut.astype(np.float32) if cut is not None else 0.0)
    order = np.argsort(-rank, kind="stable")
    ios = overlap_of_smaller(faces.xyxy, faces.xyxy)
    keep: list[int] = []
    suppressed = np.zeros(len(faces), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= ios[i] >= overlap
    return faces[np.array(sorted(keep))]
