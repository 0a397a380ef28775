from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.recognize.appearance import _gray, _laplacian, blur_quality
from tests.support.scenes import head_patch


@pytest.mark.slow
def test_gray_is_opencvs_for_every_colour():
    v = np.arange(1 << 24, dtype=np.uint32)
    colours = np.stack([v & 255, (v >> 8) & 255, v >> 16], -1).astype(np.uint8).reshape(4096, 4096, 3)
    assert (_gray(colours) == cv2.cvtColor(colours, cv2.COLOR_BGR2GRAY)).all()


def test_laplacian_and_blur_quality_are_opencvs():
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in rng.integers(2, 160, (50, 2))]
    crops.append(np.ascontiguousarray(cv2.resize(head_patch("obama.jpg")[0], (150, 150))))
    for crop in crops:
        lap = cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_32F)
        assert (_laplacian(_gray(crop)) == lap).all()
        assert blur_quality(crop[None])[0] == np.float32(min(1.0, max(0.1, lap.var() / 150.0)))


def test_a_blurred_face_scores_lower():
    face = np.ascontiguousarray(cv2.resize(head_patch("obama.jpg")[0], (150, 150)))
    blurred = cv2.GaussianBlur(face, (0, 0), 3)
    sharp_q, blurred_q = blur_quality(np.stack([face, blurred]))
    assert blurred_q < sharp_q
