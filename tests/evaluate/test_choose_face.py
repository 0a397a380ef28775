"""Which face an image is judged by: the centred one (LFW crops) or the largest."""

from __future__ import annotations

import numpy as np
import pytest

from stream.faces import Faces
from stream.photos import choose_face


def _faces(boxes: list[tuple[float, float, float, float]]) -> Faces:
    n = len(boxes)
    return Faces(np.array(boxes, np.float32).reshape(-1, 4), np.ones(n, np.float32), np.zeros((n, 6, 2), np.float32))


def test_centre_and_largest_pick_different_faces() -> None:
    # two_people.jpg's dlib boxes (1126x661): Obama nearer the centre, Biden larger.
    faces = _faces([(253, 47, 408, 202), (778, 57, 964, 242)])
    assert choose_face(faces, (661, 1126, 3), "centre") == 0
    assert choose_face(faces, (661, 1126, 3), "largest") == 1


def test_no_face_and_unknown_rule() -> None:
    assert choose_face(Faces.empty(), (10, 10, 3), "largest") is None
    with pytest.raises(ValueError, match="unknown face rule"):
        choose_face(_faces([(0, 0, 1, 1)]), (10, 10, 3), "first")
