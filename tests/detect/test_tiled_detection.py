"""The tiled detector on real photos and footage, at sizes the whole-frame pass cannot see."""

from __future__ import annotations

import numpy as np
import pytest

from stream.detect import DetectorConfig, FaceDetector
from stream.detect.merge import overlap_of_smaller
from tests.support.scenes import canvas_offset, compose_hd_frames, compose_logo_photo, hamilton_canvas_frames


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectorConfig()) as det:
        yield det


def _found(truth: np.ndarray, faces) -> np.ndarray:
    if not len(faces):
        return np.zeros(len(truth), bool)
    return overlap_of_smaller(truth, faces.xyxy).max(axis=1) >= 0.5


@pytest.mark.slow
def test_small_faces_of_composed_1080p_frames_are_found(detector):
    frames = compose_hd_frames(n=3)
    hits = total = false = found_count = 0
    untiled_hits = 0
    with FaceDetector(DetectorConfig(tiling="off")) as whole_frame:
        for image, truth in frames:
            faces = detector.detect(image)
            hits += int(_found(truth, faces).sum())
            total += len(truth)
            found_count += len(faces)
            false += int((overlap_of_smaller(faces.xyxy, truth).max(axis=1) < 0.5).sum()) if len(faces) else 0
            untiled_hits += int(_found(truth, whole_frame.detect(image)).sum())
    assert hits / total >= 0.9, (hits, total)
    assert false <= 0.05 * found_count, (false, found_count)
    assert untiled_hits / total < 0.5  # what the issue saw: the whole-frame pass misses these


@pytest.mark.slow
def test_the_hamilton_clip_at_half_size_on_a_1080p_canvas(detector):
    """The audience shot shrunk to half: four faces of ~30-35 px in a 1920x1080 frame."""
    frames = dict(hamilton_canvas_frames(0.5, every=10))
    x0, y0 = canvas_offset(0.5)
    faces = detector.detect(frames[240])
    inside = faces[(faces.xyxy[:, 0] >= x0) & (faces.xyxy[:, 1] >= y0)
                   & (faces.xyxy[:, 2] <= x0 + 320) & (faces.xyxy[:, 3] <= y0 + 180)]
    assert len(inside) >= 3 and len(inside) == len(faces), faces.xyxy
    with FaceDetector(DetectorConfig(tiling="off")) as whole_frame:
        assert len(whole_frame.detect(frames[240])) < len(inside)


def test_a_logo_behind_the_person_is_not_a_face():
    photo = compose_logo_photo()
    with FaceDetector(DetectorConfig()) as det:
        assert len(det.detect(photo)) == 1


@pytest.mark.slow
def test_video_mode_keeps_a_small_face_every_frame(detector):
    """Between full scans a tracked face is found by the closer look at its predicted box."""
    frames = dict(hamilton_canvas_frames(0.5, every=1))
    first = detector.detect_frame(frames[230], 230, np.zeros((0, 4)), full_scan=True)
    assert len(first) >= 3
    boxes = first.xyxy
    for index in range(231, 240):
        faces = detector.detect_frame(frames[index], index, boxes)
        assert len(faces) >= len(first) - 1, index
        boxes = faces.xyxy
