"""Where to look in a frame: the overlapping tiles of a sliced scan, sized from the smallest face wanted.

BlazeFace letterboxes whatever it is given to its square input, so a face is found only when it
is a large enough share of the image's long side (``min_face_share`` in the detector's model
facts). The smallest tiles are as large as they can be while ``min_face_px`` still reaches that
share; levels of larger tiles in between see the mid-sized faces, so every face lies whole inside
a tile (or the whole frame) that is small enough to see it.
"""

from __future__ import annotations

import math

import numpy as np

LEVEL_RATIO = 2.5  # each level's tiles are this much smaller than the level above
# A level whose tiles would be less than this much larger than the smallest tiles is made of the
# smallest tiles instead: a level of 307 px tiles above one of 286 px adds 35 tiles and no faces.
SNAP_RATIO = 1.25
OVERLAP_MARGIN = 1.2  # tiles overlap by this times the smallest face the level above finds


def plan_tiles(width: int, height: int, min_face_px: float, min_face_share: float) -> np.ndarray:
    """(T, 4) int xyxy tiles covering the frame; row 0 is always the whole frame.

    A pyramid: each level's tiles are ``LEVEL_RATIO`` times smaller than the level above and overlap
    by the smallest face that level above still finds (with 20% to spare), down to the tile that
    finds ``min_face_px`` faces (a level within ``SNAP_RATIO`` of that tile is made of it). One level
    of smallest tiles alone would have to overlap by the smallest face the whole frame finds: on a
    1080p frame for 24 px faces at a share of 0.07 that is 61 tiles instead of 35. No further tiles
    when the whole frame already sees ``min_face_px`` faces.
    """
    long_side = max(width, height)
    tiles = [(0, 0, width, height)]
    if min_face_px <= 0 or min_face_px >= min_face_share * long_side:
        return np.array(tiles, np.int32)
    smallest = math.ceil(min_face_px / min_face_share)
    above = long_side
    while above > smallest:
        side = max(smallest, math.ceil(above / LEVEL_RATIO))
        if side < SNAP_RATIO * smallest:
            side = smallest
        overlap = min(side // 2, math.ceil(OVERLAP_MARGIN * min_face_share * above))
        tiles += [(x, y, min(x + side, width), min(y + side, height))
                  for y in _starts(height, side, overlap) for x in _starts(width, side, overlap)]
        above = side
    return np.array(tiles, np.int32)


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
