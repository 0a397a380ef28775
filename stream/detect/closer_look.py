"""A second, closer look at chosen regions: live tracks and new candidates, in one detector call.

Each region (a box grown ``ROI_SCALE`` times around a face) is warped into one cell of a mosaic,
and the mosaic goes through the detector once. The cell's side is the detector's
(``DetectorFacts.look_cell_px``): BlazeFace's 128 px upscale a 40 px face to about 64 px, a
quarter of a 2x2 mosaic's side, where that model is surest. So a track costs a fraction of a
detector call per frame however small its face, and a candidate from a tile that is not a face
(a logo, a pattern cut by a tile edge) rarely survives the look at its context.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stream.faces import Faces, concat_faces

ROI_SCALE = 2.0
MAX_GRID = 4  # 16 regions a call: a face stays >= 1/8 of the mosaic side
_GRAY = 127


def regions(boxes: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """(N, 3) square regions (cx, cy, side) around xyxy boxes."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(scale * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 16.0)
    return np.stack([cx, cy, side], axis=1)


def look_closer(detect, image: np.ndarray, boxes: np.ndarray, cell_px: int) -> tuple[Faces, np.ndarray]:
    """Detect faces in the regions around ``boxes``; returns (faces in frame pixels, region index of each).

    detect: one detector call on a BGR image -> Faces in that image's pixels (no size filter).
    cell_px: side of a region's cell in the mosaic (the detector's ``look_cell_px``).
    """
    rois = regions(boxes)
    found: list[Faces] = []
    owners: list[np.ndarray] = []
    per_call = MAX_GRID * MAX_GRID
    for start in range(0, len(rois), per_call):
        chunk = rois[start:start + per_call]
        faces, owner = _mosaic_pass(detect, image, chunk, cell_px)
        found.append(faces)
        owners.append(owner + start)
    if not found:
        return Faces.empty(), np.zeros(0, np.int64)
    return concat_faces(found), np.concatenate(owners)


def _mosaic_pass(detect, image: np.ndarray, rois: np.ndarray, cell_px: int) -> tuple[Faces, np.ndarray]:
    grid = max(2, math.ceil(math.sqrt(len(rois))))
    mosaic = np.full((grid * cell_px, grid * cell_px, 3), _GRAY, np.uint8)
    for i, (cx, cy, side) in enumerate(rois):
        k = cell_px / side
        matrix = np.array([[k, 0, cell_px / 2 - k * cx], [0, k, cell_px / 2 - k * cy]], np.float64)
        row, col = divmod(i, grid)
        mosaic[row * cell_px:(row + 1) * cell_px, col * cell_px:(col + 1) * cell_px] = cv2.warpAffine(
            image, matrix, (cell_px, cell_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
            borderValue=(_GRAY, _GRAY, _GRAY))
    faces = detect(mosaic)
    if not len(faces):
        return Faces.empty(faces.layout), np.zeros(0, np.int64)
    centre = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    col = np.clip((centre[:, 0] // cell_px).astype(np.int64), 0, grid - 1)
    row = np.clip((centre[:, 1] // cell_px).astype(np.int64), 0, grid - 1)
    cell = row * grid + col
    keep = cell < len(rois)
    faces, cell, row, col = faces[keep], cell[keep], row[keep], col[keep]
    # cell pixels -> frame pixels: p = roi_origin + (p - cell_origin) * side / cell_px
    rois_k = rois[cell]
    scale = rois_k[:, 2] / cell_px
    origin = np.stack([rois_k[:, 0] - rois_k[:, 2] / 2, rois_k[:, 1] - rois_k[:, 2] / 2], axis=1)
    cell_origin = np.stack([col, row], axis=1).astype(np.float32) * cell_px
    xy = faces.xyxy.reshape(-1, 2, 2)
    xyxy = (origin[:, None] + (xy - cell_origin[:, None]) * scale[:, None, None]).reshape(-1, 4)
    kps = origin[:, None] + (faces.keypoints - cell_origin[:, None]) * scale[:, None, None]
    h, w = image.shape[:2]
    xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0, w)
    xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0, h)
    return Faces(xyxy, faces.score, kps, layout=faces.layout), cell
