from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.track.scene import SceneCutDetector
from tests.conftest import media_path


def test_the_hamilton_clip_cuts_exactly_where_its_shots_change():
    detector = SceneCutDetector()
    capture = cv2.VideoCapture(str(media_path("short_hamilton_clip.mp4")))
    cuts, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if detector.is_cut(frame):
            cuts.append(index)
        index += 1
    capture.release()
    # stage wide shot -> Alex Lacamoire close-up -> Lin-Manuel Miranda -> the audience (checked by eye)
    assert cuts == [20, 82, 211]


@pytest.mark.slow
def test_a_cut_inside_a_small_inset_is_found_around_the_tracked_faces():
    """The clip shown at a third of its size on a still 1080p canvas: the whole frame barely
    changes at the cut to the audience (frame 211), the region around the tracked face does."""
    from tests.support.scenes import canvas_offset, hamilton_canvas_frames

    frames = dict(hamilton_canvas_frames(1 / 3, every=1))
    x0, y0 = canvas_offset(1 / 3)
    face = np.array([[x0 + 70, y0 + 10, x0 + 100, y0 + 40]], np.float32)  # Lin-Manuel Miranda, singing
    detector = SceneCutDetector()
    cuts = [i for i in range(200, 220) if detector.is_cut(frames[i], face)]
    assert cuts == [211]
    whole_only = SceneCutDetector()
    assert not any(whole_only.is_cut(frames[i]) for i in range(200, 220))
