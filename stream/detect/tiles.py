"""Where to look in a frame: the overlapping tiles of a sliced scan, sized from the smallest face wanted.

BlazeFace letterboxes whatever it is given to its square input, so a face is found only when it
is a large enough share of the image's long side (``min_face_share`` in the detector's model
facts). A tile is as large as it can be while ``min_face_px`` still reaches that share. Tiles
overlap by the largest face the whole-frame pass may miss, so every face small enough to need a
tile lies whole inside at least one.
"""

from __future__ import annotations

import math

import numpy as np


def plan_tiles(width: int, height: int, min_face_px: float, min_face_share: float) -> np.ndarray:
    """(T, 4) int xyxy tiles covering the frame; row 0 is always the whole frame.

    No further tiles when the whole frame already sees ``min_face_px`` faces.
    """
    whole = np.array([[0, 0, width, height]], np.int32)
    long_side = max(width, height)
    if min_face_px <= 0 or min_face_px >= min_face_share * long_side:
        return whole
    side = math.ceil(min_face_px / min_face_share)
    # Faces up to what the whole-frame pass finds must fit whole in some tile.
    overlap = min(side // 2, math.ceil(1.2 * min_face_share * long_side))
    xs = _starts(width, side, overlap)
    ys = _starts(height, side, overlap)
    tiles = [(x, y, min(x + side, width), min(y + side, height)) for y in ys for x in xs]
    return np.vstack([whole, np.array(tiles, np.int32)])


def _starts(length: int, side: int, overlap: int) -> list[int]:
    if side >= length:
        return [0]
    count = math.ceil((length - overlap) / (side - overlap))
    # Spread the tiles evenly so the last one ends at the edge instead of hanging past it.
    step = (length - side) / (count - 1) if count > 1 else 0
    return [round(i * step) for i in range(count)]


def rolling_schedule(tile_count: int, scan_every: int, frame: int) -> np.ndarray:
    """Indices of the tiles to scan at ``frame`` so that all are scanned every ``scan_every`` frames
    at an even cost per frame (no latency spike on the frame that would otherwise scan them all)."""
    per_frame = math.ceil(tile_count / max(1, scan_every))
    start = (frame % max(1, scan_every)) * per_frame
    return np.arange(start, min(start + per_frame, tile_count))
