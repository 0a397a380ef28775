"""What of a video frame the detector can skip: what did not change since it last looked.

``MotionGate`` (below): a whole frame, when nothing moved and no track is open. ``TileMotion``:
the scan's tiles in which nothing changed since their own last scan.

A fixed camera's frame is mostly still (walls, street, sky); the tiled scan looks for new faces,
and a new face in a tile changes its pixels. So a tile is scanned again only when it changed
since its own last scan, or when that scan is ``rescan_after`` frames old (a still face whose
track was lost is found again within that time). Frigate runs its detector on motion regions for
the same reason. Compared on the scene-cut detector's reduced gray copy of the frame (320-639 px
wide): on the test canvases a still tile's pixels move by at most 2 gray levels over 10 frames,
a tile where the clip plays by 100-200.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

CHANGE_LEVEL = 12  # gray levels (0-255) a reduced pixel must move by to count as changed
MIN_CHANGED = 3  # changed reduced pixels that make a tile changed (a 24 px face is ~16 of them)
_QUANTILES = np.linspace(0, 100, 33)  # of the gray levels, matched to take out a change of light


class TileMotion:
    def __init__(self, rescan_after: int) -> None:
        self.rescan_after = max(1, rescan_after)
        self._tiles: np.ndarray | None = None
        self._regions: list[tuple[slice, slice]] = []
        self._reference: list[np.ndarray | None] = []
        self._scanned_at: np.ndarray = np.zeros(0, np.int64)
        self.skipped = 0  # tile looks saved, for cost figures

    def select(self, gray: np.ndarray, scale: float, tiles: np.ndarray, wanted: np.ndarray, frame: int,
               force: bool = False, changed_only: bool = False) -> np.ndarray:
        """The subset of ``wanted`` (tile indices due this frame) to scan; records them as scanned.

        gray: the frame's reduced gray copy (int16), ``scale`` its size over the frame's.
        force: scan every wanted tile (first frame, scene cut: nothing is known about the picture).
        changed_only: only the tiles that changed since their own last scan, however old that scan
        (an idle picture's periodic rescan: the same pixels would give the same answer).
        """
        if self._tiles is None or self._tiles.shape != tiles.shape or not np.array_equal(self._tiles, tiles) \
                or (self._reference and self._reference[0] is not None and self._reference[0].shape != gray.shape):
            self._reset(tiles, scale, gray.shape)
        chosen = []
        for i in (int(t) for t in wanted):
            ref = self._reference[i]
            if force or ref is None or (not changed_only and frame - self._scanned_at[i] >= self.rescan_after) \
                    or self._changed(gray, ref, self._regions[i]):
                chosen.append(i)
                self._reference[i] = gray
                self._scanned_at[i] = frame
            else:
                self.skipped += 1
        return np.array(chosen, np.int64)

    def forget(self, box: tuple[float, float, float, float]) -> None:
        """The tiles overlapping ``box`` (x0, y0, x1, y1 in the frame) count as never scanned: a track
        that ended there may have left its face in view, unchanged, for the next scan to find."""
        if self._tiles is None:
            return
        x0, y0, x1, y1 = box
        t = self._tiles
        hit = (t[:, 0] < x1) & (t[:, 2] > x0) & (t[:, 1] < y1) & (t[:, 3] > y0)
        for i in np.flatnonzero(hit):
            self._reference[int(i)] = None

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


class MotionGate:
    """Per source: whether a video frame needs the detector at all.

    Skipping still tiles (above) leaves the cost of the scan's planning, an empty detector result,
    the tracker and the scene-cut test's colours for every frame; an idle camera (nothing moving,
    no track open) needs none of that. So, before any of it, the frame's reduced gray copy is
    compared with the one of the last frame that had the whole scan: the detector runs when
    something changed since, when a track is open, on a scene cut, and every ``rescan_s`` seconds
    of the stream anyway (``"rescan"``: the tiles that changed at all and those where a track was
    lost), every tile only every ``every_tile_s`` (``"full"``: the same pixels give the same answer).

    Noise is not motion: a reduced pixel counts as changed when its 3x3 neighbourhood moved by more
    than ``CHANGE_LEVEL`` on average. A change of the light (a lamp, auto exposure, a cloud) moves
    every pixel at once; it is taken out first, the reference's gray levels mapped onto the frame's
    by their quantiles, so only what changed against the rest of the picture counts. Measured with
    ``tools/measure_motion_noise.py`` on a Hamilton clip frame, a 640x360 background and the 1080p
    canvas: sensor noise up to sigma 8, JPEG down to quality 30 and mp4v compression of a noisy
    still picture change no pixel; light x0.85, x1.15, -20 and +20 levels change none once the
    light is taken out (on the clip frame, whose stage lights clip colour by colour when
    brightened, x1.15 still changes 140: the usual scan until the next whole one, then still
    again); a real 24 px face appearing changes 208 (1080p canvas) to 884 (640x360).
    """

    def __init__(self, rescan_s: float, every_tile_s: float = math.inf) -> None:
        self.rescan_s = rescan_s
        self.every_tile_s = every_tile_s
        self._reference: np.ndarray | None = None
        self._scanned_at = 0.0
        self._every_tile_at = 0.0  # stream time of the last scan of every tile, changed or not
        self.skipped = 0  # frames that never reached the detector, for cost figures

    def decide(self, gray: np.ndarray, t: float, tracked: bool = False, force: bool = False) -> str:
        """What the frame at ``t`` (seconds of the stream) gets: ``"skip"`` (no detector), ``"look"``
        (the detector as usual), ``"full"`` (the whole scan of every tile: nothing is known about the
        picture, or its last such scan is ``every_tile_s`` old), ``"rescan"`` (the periodic scan of a
        still picture, its last one ``rescan_s`` old: the tiles that changed since their own last look).

        gray: the frame's reduced gray copy (int16). tracked: a track is open (it needs its closer
        look). force: a scene cut, or anything else after which nothing is known about the picture.
        """
        ref = self._reference
        if force or ref is None or ref.shape != gray.shape or t < self._scanned_at:
            return "full"
        if tracked:
            return "look"
        if t - self._scanned_at >= self.rescan_s:
            return "full" if t - self._every_tile_at >= self.every_tile_s else "rescan"
        if moved(gray, ref):
            return "look"
        self.skipped += 1
        return "skip"

    def scanned(self, gray: np.ndarray, t: float, every_tile: bool = True) -> None:
        """The frame at ``t`` had the whole scan: the next frames are compared with it. Only a whole
        scan: after a rolling share, tiles that changed may not have been looked at yet. every_tile:
        False where the scan left out the tiles unchanged since their own last look."""
        self._reference, self._scanned_at = gray, t
        if every_tile:
            self._every_tile_at = t

    def forget(self) -> None:
        """Nothing is known about the picture any more: the next frame gets the whole scan."""
        self._reference = None


def moved(gray: np.ndarray, reference: np.ndarray) -> bool:
    """Whether anything in ``gray`` changed against ``reference`` beyond noise and a change of light."""
    if changed_pixels(gray, reference) < MIN_CHANGED:
        return False  # the usual case, in one pass; the light is only looked at when pixels changed
    return changed_pixels(gray, relit(reference, gray)) >= MIN_CHANGED


def changed_pixels(gray: np.ndarray, reference: np.ndarray) -> int:
    """Reduced pixels whose 3x3 neighbourhood moved by more than ``CHANGE_LEVEL`` on average: noise
    and compression ringing (single pixels, thin edges) average out, anything face-sized does not."""
    return int(np.count_nonzero(np.abs(cv2.blur(gray - reference, (3, 3))) > CHANGE_LEVEL))


def relit(reference: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """``reference`` under the light of ``gray``: its gray levels mapped onto the frame's by their
    quantiles. Any change of light that keeps the order of the levels (gain, offset, gamma, clipped
    highlights) is taken out; a face entering moves the quantiles by a fraction of a level."""
    src = np.percentile(reference[::4, ::4], _QUANTILES)
    dst = np.percentile(gray[::4, ::4], _QUANTILES)
    lut = np.rint(np.interp(np.arange(256), np.maximum.accumulate(src), dst)).astype(np.int16)
    return lut[np.clip(reference, 0, 255)]


class StreamClock:
    """Seconds of a source's stream, from its frames' pts, or from their capture time where the pts
    do not advance (a camera that reports no frame rate gives pts 0). Never goes back."""

    def __init__(self) -> None:
        self.now = 0.0
        self._last: tuple[float, float] | None = None

    def advance(self, pts: float, capture_ts: float) -> float:
        if self._last is not None:
            last_pts, last_capture = self._last
            self.now += pts - last_pts if pts > last_pts else max(0.0, capture_ts - last_capture)
        self._last = (pts, capture_ts)
        return self.now
