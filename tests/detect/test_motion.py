"""Skipping the scan's still tiles: on real frames of the 1080p canvas, and the rules on their own."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from stream.detect.motion import TileMotion
from stream.detect.scan import FaceDetector
from stream.detect.tiles import plan_tiles
from stream.track.scene import SceneCutDetector
from tests.support.scenes import canvas_offset, hamilton_canvas_frames


def _gray(value: int, changed: tuple[slice, slice] | None = None) -> np.ndarray:
    gray = np.full((180, 320), value, np.int16)
    if changed is not None:
        gray[changed] += 60
    return gray


def test_a_still_tile_is_skipped_until_it_changes_or_goes_stale():
    tiles = np.array([[0, 0, 1920, 1080], [0, 0, 960, 1080], [960, 0, 1920, 1080]], np.int32)
    motion = TileMotion(rescan_after=40)
    scale = 320 / 1920
    everything = np.arange(3)
    assert motion.select(_gray(100), scale, tiles, everything, 0).tolist() == [0, 1, 2]  # nothing known yet
    assert motion.select(_gray(101), scale, tiles, everything, 1).tolist() == []  # noise only
    moved = (slice(10, 20), slice(200, 210))  # something in the right half
    assert motion.select(_gray(100, moved), scale, tiles, everything, 2).tolist() == [0, 2]
    assert motion.select(_gray(100, moved), scale, tiles, everything, 3).tolist() == []  # compared to its last scan
    assert motion.select(_gray(100, moved), scale, tiles, everything, 3, force=True).tolist() == [0, 1, 2]
    assert motion.select(_gray(100, moved), scale, tiles, everything, 43).tolist() == [0, 1, 2]  # stale
    assert motion.skipped == 7


@pytest.mark.slow
def test_on_the_canvas_only_the_tiles_where_the_clip_plays_are_scanned():
    frames = [image for _, image in islice(hamilton_canvas_frames(0.5, every=1), 12)]
    tiles = plan_tiles(1920, 1080, 24, 0.07)
    scenes, motion = SceneCutDetector(), TileMotion(rescan_after=40)
    scanned = set()
    for index, image in enumerate(frames):
        scenes.is_cut(image)
        chosen = motion.select(scenes.gray, scenes.scale, tiles, np.arange(len(tiles)), index)
        if index:
            scanned |= set(chosen.tolist())
    x0, y0 = canvas_offset(0.5)
    clip = np.array([x0, y0, x0 + 320, y0 + 180])
    for i in scanned:  # every tile scanned after the first frame overlaps the playing clip
        x_a, y_a, x_b, y_b = tiles[i]
        assert x_a < clip[2] and clip[0] < x_b and y_a < clip[3] and clip[1] < y_b, tiles[i]
    assert 0 < len(scanned) < len(tiles) // 2


@pytest.mark.slow
def test_video_with_still_tiles_skipped_finds_the_same_faces(engines_dir):
    from stream.config.schema import AppConfig
    from stream.pipeline.workers import VideoFaces

    frames = [image for _, image in islice(hamilton_canvas_frames(0.5, every=1), 210, 250)]
    found = {}
    for skip in (False, True):
        cfg = AppConfig()
        cfg.detector.skip_still_tiles = skip
        video = VideoFaces(cfg)
        with FaceDetector(cfg.detector) as detector:
            detector.load()
            found[skip] = [video.detect(image, i, detector)[0] for i, image in enumerate(frames)]
            calls = detector.calls
        found[f"calls-{skip}"] = calls
    assert [len(f) for f in found[True]] == [len(f) for f in found[False]]
    assert sum(len(f) for f in found[True]) > 0
    assert found["calls-True"] < 0.7 * found["calls-False"]
