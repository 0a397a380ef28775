"""Real MediaPipe on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from stream.align import read_image
from stream.detect.mediapipe_detector import DetectorConfig, MediaPipeFaceDetector
from tests.conftest import media_path


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def detectors():
    with MediaPipeFaceDetector(DetectorConfig(model="short")) as short, \
            MediaPipeFaceDetector(DetectorConfig(model="full")) as full:
        yield short, full


def test_two_people_gives_two_faces_with_keypoints_inside_boxes(detectors):
    short, _ = detectors
    faces = short.detect(read_image(media_path("two_people.jpg")))
    assert len(faces) == 2
    for box, kps, score in zip(faces.xyxy, faces.keypoints, faces.score):
        assert score > 0.8
        eyes_nose_mouth = kps[:4]
        assert (eyes_nose_mouth[:, 0] >= box[0]).all() and (eyes_nose_mouth[:, 0] <= box[2]).all()
        # keypoint 0 is the subject's right eye: on the image's left
        assert kps[0, 0] < kps[1, 0]


@pytest.mark.parametrize("name", ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg",
                                  "lin-manuel-miranda.png", "alex-lacamoire.png"])
def test_full_range_agrees_with_short_range(detectors, name):
    """The full-range model runs through the legacy graph; check it finds the same faces."""
    short, full = detectors
    image = read_image(media_path(name))
    a, b = short.detect(image), full.detect(image)
    assert len(a) == len(b) >= 1
    for box in a.xyxy:
        assert max(iou(box, other) for other in b.xyxy) > 0.7


def test_min_face_px_filters_small_faces():
    image = read_image(media_path("two_people.jpg"))
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=4000)) as det:
        assert len(det.detect(image)) == 0


def test_blank_image_has_no_faces(detectors):
    assert len(detectors[0].detect(np.zeros((240, 320, 3), np.uint8))) == 0


def test_rejects_non_bgr_input(detectors):
    with pytest.raises(ValueError, match="BGR uint8"):
        detectors[0].detect(np.zeros((10, 10), np.uint8))
