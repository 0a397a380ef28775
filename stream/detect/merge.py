"""One box per face from overlapping looks (tiles, whole frame, track crops)."""

from __future__ import annotations

import numpy as np

from stream.boxes import intersections
from stream.faces import Faces


def overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area, (N, 4) x (M, 4) xyxy.

    Unlike IoU it is ~1 for a half face cut by a tile edge against the whole face, so the two
    merge instead of counting as two faces.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter, area_a, area_b = intersections(a, b)
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
