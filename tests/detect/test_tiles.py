from __future__ import annotations

import numpy as np
import pytest

from stream.detect.merge import merge_faces, overlap_of_smaller
from stream.detect.tiles import plan_tiles, rolling_schedule
from stream.faces import NUM_KEYPOINTS, Faces


@pytest.mark.parametrize(("width", "height", "min_px"), [(1920, 1080, 24), (1920, 1080, 40), (640, 360, 24),
                                                         (1280, 720, 24), (1920, 1080, 20)])
def test_every_face_lies_whole_in_a_tile_small_enough_to_see_it(width, height, min_px):
    share = 0.07
    tiles = plan_tiles(width, height, min_px, share)
    assert tuple(tiles[0]) == (0, 0, width, height)
    sides = np.maximum(tiles[:, 2] - tiles[:, 0], tiles[:, 3] - tiles[:, 1])
    assert sides[1:].min() * share <= min_px + 1
    rng = np.random.default_rng(0)
    for _ in range(1000):
        size = rng.uniform(min_px, min(height, share * max(width, height) * 1.5))
        x, y = rng.uniform(0, width - size), rng.uniform(0, height - size)
        inside = (tiles[:, 0] <= x) & (tiles[:, 1] <= y) & (tiles[:, 2] >= x + size) & (tiles[:, 3] >= y + size)
        sees = sides * share <= size + 1  # the tile sizes are rounded up to whole pixels
        assert (inside & sees).any(), (x, y, size)


def test_a_1080p_frame_needs_35_tiles_for_24px_faces():
    assert len(plan_tiles(1920, 1080, 24, 0.07)) == 35


def test_a_level_barely_larger_than_the_smallest_tiles_is_made_of_them():
    # 1920 -> 768 -> 307 would leave a level of 307 px tiles above the 286 px ones: 87 tiles, not 52
    tiles = plan_tiles(1920, 1080, 20, 0.07)
    sides = set(np.maximum(tiles[1:, 2] - tiles[1:, 0], tiles[1:, 3] - tiles[1:, 1]).tolist())
    assert sides == {768, 286} and len(tiles) == 52


def test_a_frame_the_model_sees_whole_gets_no_tiles():
    assert plan_tiles(640, 360, 48, 0.07).tolist() == [[0, 0, 640, 360]]
    assert plan_tiles(1920, 1080, 0, 0.07).tolist() == [[0, 0, 1920, 1080]]


def test_rolling_schedule_covers_every_tile_once_per_period():
    for count, every in [(25, 10), (7, 10), (3, 1), (1, 5)]:
        seen = np.concatenate([rolling_schedule(count, every, f) for f in range(every)])
        assert sorted(seen.tolist()) == list(range(count))


def _faces(boxes, scores):
    boxes = np.array(boxes, np.float32)
    return Faces(boxes, scores, np.zeros((len(boxes), NUM_KEYPOINTS, 2)))


def test_a_face_cut_by_a_tile_edge_merges_into_its_whole_look():
    whole, half, other = [100, 100, 160, 160], [130, 100, 160, 160], [400, 100, 460, 160]
    faces = _faces([half, whole, other], [0.95, 0.8, 0.9])
    merged = merge_faces(faces, cut=np.array([True, False, False]))
    assert merged.xyxy.tolist() == [whole, other]
    assert overlap_of_smaller(np.array([half], np.float32), np.array([whole], np.float32))[0, 0] == 1.0
    assert len(merge_faces(Faces.empty())) == 0
