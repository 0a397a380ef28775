from __future__ import annotations

import cv2

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
