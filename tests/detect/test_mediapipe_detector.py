"""Real MediaPipe on real photos: its two ranges agree (what every detector does: test_photo_detection)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.detect.blazeface.graph import MediaPipeFaceDetector
from stream.detect.config import DetectorConfig
from stream.images import read_image
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


@pytest.mark.slow
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
