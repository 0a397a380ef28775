"""tools/bench_decode.py: the per-frame measurement on the real clip."""

from __future__ import annotations

import cv2
import pytest

from tests.conftest import media_path
from tools.bench_decode import _CopyInto, _grab, per_frame


@pytest.mark.slow  # decodes the whole clip
def test_per_frame_counts_the_frames_stepped_and_stops_at_the_limit_or_the_end():
    cap = cv2.VideoCapture(str(media_path("short_hamilton_clip.mp4")), cv2.CAP_FFMPEG)
    figures = per_frame(cap, _grab, limit_frames=10)
    assert figures["frames"] == 10 and figures["cpu_ms"] >= 0 and figures["wall_ms"] > 0
    rest = per_frame(cap, _grab)  # to the end of the clip
    cap.release()
    assert rest["frames"] == 275 - 10


def test_the_half_size_copy_fills_a_half_size_slot():
    cap = cv2.VideoCapture(str(media_path("short_hamilton_clip.mp4")), cv2.CAP_FFMPEG)
    step = _CopyInto((640, 360), half=True)
    assert step(cap)
    cap.release()
    assert step.slot.shape == (180, 320, 3) and step.slot.any()
