"""Which of a scan's tiles can be skipped this frame: nothing in them changed since their last scan.

A fixed camera's frame is mostly still (walls, street, sky); the tiled scan looks for new faces,
and a new face in a tile changes its pixels. So a tile is scanned again only when it changed
since its own last scan, or when that scan is ``rescan_after`` frames old (a still face whose
track was lost is found again within that time). Frigate runs its detector on motion regions for
the same reason. Compared on the scene-cut detector's reduced gray copy of the frame (320-639 px
wide): on the test canvases a still tile's pixels move by at most 2 gray levels over 10 frames,
a tile where the clip plays by 100-200.
"""

from __future__ import annotations

import numpy as np

CHANGE_LEVEL = 12  # gray levels (0-255) a reduced pixel must move by to count as changed
MIN_CHANGED = 3  # changed reduced pixels that make a tile changed (a 24 px face is ~16 of them)


class TileMotion:
    def __init__(self, rescan_after: int) -> None:
        self.rescan_after = max(1, rescan_after)
        self._tiles: np.ndarray | None = None
        self._regions: list[tuple[slice, slice]] = []
        self._reference: list[np.ndarray | None] = []
        self._scanned_at: np.ndarray = np.zeros(0, np.int64)
        self.skipped = 0  # tile looks saved, for cost figures

    def select(self, gray: np.ndarray, scale: float, tiles: np.ndarray, wanted: np.ndarray, frame: int,
               force: bool = False) -> np.ndarray:
        """The subset of ``wanted`` (tile indices due this frame) to scan; records them as scanned.

        gray: the frame's reduced gray copy (int16), ``scale`` its size over the frame's.
        force: scan every wanted tile (first frame, scene cut: nothing is known about the picture).
        """
        if self._tiles is None or self._tiles.shape != tiles.shape or not np.array_equal(self._tiles, tiles) \
                or (self._reference and self._reference[0] is not None and self._reference[0].shape != gray.shape):
            self._reset(tiles, scale, gray.shape)
        chosen = []
        for i in (int(t) for t in wanted):
            ref = self._reference[i]
            if force or ref is None or frame - self._scanned_at[i] >= self.rescan_after \
                    or self._changed(gray, ref, self._regions[i]):
                chosen.append(i)
                self._reference[i] = gray
                self._scanned_at[i] = frame
            else:
                self.skipped += 1
        return np.array(chosen, np.int64)

    def _reset(self, tiles: np.ndarray, scale: float, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        self._tiles = tiles.copy()
        self._regions = []
        for x0, y0, x1, y1 in tiles:
            xa, ya = min(int(x0 * scale), w - 1), min(int(y0 * scale), h - 1)
            self._regions.append((slice(ya, max(ya + 1, int(np.ceil(y1 * scale)))),
                                  slice(xa, max(xa + 1, int(np.ceil(x1 * scale))))))
        self._reference = [None] * len(tiles)
        self._scanned_at = np.zeros(len(tiles), np.int64)

    @staticmethod
    def _changed(gray: np.ndarray, reference: np.ndarray, region: tuple[slice, slice]) -> bool:
        diff = np.abs(gray[region] - reference[region])
        return int(np.count_nonzero(diff > CHANGE_LEVEL)) >= MIN_CHANGED
