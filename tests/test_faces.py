from __future__ import annotations

import numpy as np
import pytest

from stream.faces import NUM_KEYPOINTS, Faces


def make(n: int) -> Faces:
    boxes = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    return Faces(boxes, np.linspace(0.5, 1, n), np.zeros((n, NUM_KEYPOINTS, 2)))


def test_empty_has_zero_rows_and_valid_shapes():
    f = Faces.empty()
    assert len(f) == 0
    assert f.xyxy.shape == (0, 4)
    assert f.keypoints.shape == (0, NUM_KEYPOINTS, 2)
    assert f.track_id.shape == (0,)


@pytest.mark.parametrize("index", [np.array([True, False, True]), [0, 2], slice(0, 3, 2)])
def test_indexing_keeps_rows_aligned(index):
    f = make(3).with_(embeddings=np.eye(3, dtype=np.float32))
    sub = f[index]
    assert len(sub) == 2
    np.testing.assert_array_equal(sub.xyxy, f.xyxy[[0, 2]])
    np.testing.assert_array_equal(sub.embeddings, np.eye(3)[[0, 2]])


def test_integer_index_returns_faces():
    assert isinstance(make(3)[1], Faces)
    assert len(make(3)[1]) == 1


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("score", np.zeros(2), "score must have shape (3,)"),
        ("track_id", np.zeros(4), "track_id must have shape (3,)"),
        ("embeddings", np.zeros((2, 8)), "embeddings must have shape (3, *)"),
        ("crops", np.zeros((3, 4, 4)), "crops must have shape (3, *, *, 3)"),
    ],
)
def test_shape_errors_name_the_field_and_expected_shape(field, value, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        make(3).with_(**{field: value})


def test_with_does_not_mutate_original():
    f = make(2)
    g = f.with_(track_id=np.array([5, 6]))
    assert list(f.track_id) == [-1, -1]
    assert list(g.track_id) == [5, 6]
