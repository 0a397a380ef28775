from __future__ import annotations

import numpy as np
import pytest

from stream.faces import NUM_KEYPOINTS, Faces
from stream.track.cadence import EmbeddingCadence
from stream.track.sort import SortTracker, TrackerConfig, iou_matrix


def faces(*boxes) -> Faces:
    arr = np.array(boxes, np.float32).reshape(-1, 4)
    return Faces(arr, np.ones(len(arr)), np.zeros((len(arr), NUM_KEYPOINTS, 2)))


def moving(x0: float, dx: float, frames: int, y: float = 100, size: float = 60):
    return [(x0 + dx * i, y, x0 + dx * i + size, y + size) for i in range(frames)]


def test_iou_matrix_edges():
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    box = np.array([[0, 0, 10, 10]], np.float32)
    assert iou_matrix(box, box)[0, 0] == pytest.approx(1.0)
    assert iou_matrix(box, box + 20)[0, 0] == 0


def test_a_moving_face_keeps_its_id():
    tracker = SortTracker()
    ids = {int(tracker.update(faces(b)).track_id[0]) for b in moving(0, 5, 30)}
    assert ids == {1}


def test_two_faces_crossing_keep_their_ids():
    tracker = SortTracker()
    left, right = moving(0, 8, 40), moving(400, -8, 40, y=200)
    seen = [tracker.update(faces(a, b)).track_id.tolist() for a, b in zip(left, right)]
    assert all(ids == [1, 2] for ids in seen)


def test_short_gap_keeps_id_long_gap_ends_track():
    tracker = SortTracker(TrackerConfig(max_age=5))
    path = moving(0, 2, 40)
    for b in path[:10]:
        tracker.update(faces(b))
    for _ in range(4):  # missed detections, shorter than max_age
        tracker.update(Faces.empty())
    assert tracker.update(faces(path[14])).track_id.tolist() == [1]
    for _ in range(7):
        tracker.update(Faces.empty())
    ended = tracker.pop_ended()
    assert [e.track_id for e in ended] == [1]
    assert ended[0].hits == 11
    assert tracker.update(faces(path[14])).track_id.tolist() == [2], "ids are never reused"


def test_update_does_not_mutate_input_and_handles_empty():
    tracker = SortTracker()
    f = faces((0, 0, 50, 50))
    out = tracker.update(f)
    assert f.track_id.tolist() == [-1] and out.track_id.tolist() == [1]
    assert len(tracker.update(Faces.empty())) == 0


def test_end_all_and_reset():
    tracker = SortTracker()
    tracker.update(faces((0, 0, 50, 50), (100, 100, 150, 150)))
    assert sorted(e.track_id for e in tracker.end_all()) == [1, 2]
    tracker.reset()
    assert tracker.pop_ended() == []


def test_cadence_embeds_new_tracks_every_frame_and_confident_ones_every_n():
    cadence = EmbeddingCadence(reembed_every=5)
    ids = np.array([7, 8])
    assert cadence.select(ids, 0).tolist() == [True, True]
    cadence.mark(7, True)
    picked = [cadence.select(ids, f).tolist() for f in range(1, 11)]
    assert [p[1] for p in picked] == [True] * 10, "uncertain track: every frame"
    assert [f for f, p in zip(range(1, 11), picked) if p[0]] == [5, 10], "confident: every 5th"
    cadence.mark(7, False)
    assert cadence.select(ids, 11).tolist() == [True, True]
    cadence.forget(7)
    assert cadence.select(np.array([7]), 12).tolist() == [True]


def test_faces_side_by_side_are_not_in_doubt_overlapping_ones_are():
    from stream.track.cadence import in_doubt

    side_by_side = np.array([[0, 0, 50, 50], [49, 0, 99, 50]], np.float32)  # heads touching: IoU 0.01
    assert not in_doubt(side_by_side).any()
    crossing = np.array([[0, 0, 50, 50], [30, 0, 80, 50], [300, 0, 350, 50]], np.float32)  # IoU 0.25
    assert in_doubt(crossing).tolist() == [True, True, False]
