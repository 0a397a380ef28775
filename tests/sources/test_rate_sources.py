"""A processing rate on real sources: the clip through FFmpeg, and a live MJPEG camera on 127.0.0.1."""

from __future__ import annotations

import itertools
import time

import cv2
import pytest

from stream.sources.file import FileSource
from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.mjpeg_server import MjpegServer

CLIP_FRAMES = 275


class CountingCapture:
    """The real capture, with its calls counted: which frames were converted to BGR."""

    def __init__(self, cap: cv2.VideoCapture) -> None:
        self.cap = cap
        self.calls = {"grab": 0, "retrieve": 0, "read": 0}

    def __getattr__(self, name):
        if name in self.calls:
            self.calls[name] += 1
        return getattr(self.cap, name)


def read_all(source) -> list:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_a_file_at_10_fps_takes_every_third_frame_and_converts_only_those():
    source = FileSource(parse_source(str(media_path("short_hamilton_clip.mp4")), 0), fps=10.0)
    source.open()
    counting = source._cap = CountingCapture(source._cap)
    try:
        frames = read_all(source)
    finally:
        source.close()
    assert [f.index for f in frames] == list(range(0, CLIP_FRAMES, 3))
    assert source.stats.frames_read == len(frames) == 92
    assert source.stats.frames_skipped == CLIP_FRAMES - 92
    # the first frame was read at open; every later one grabbed, only the taken ones retrieved
    assert counting.calls["read"] == 0
    assert counting.calls["retrieve"] == 91
    assert counting.calls["grab"] >= CLIP_FRAMES - 1
    pts = [f.pts for f in frames]
    assert pts[1] == pytest.approx(3 / 29.97, abs=1e-3) and pts[-1] == pytest.approx(273 / 29.97, abs=1e-3)
    assert frames[5].image.shape == (360, 640, 3)


def test_a_file_without_a_rate_reads_every_frame():
    source = FileSource(parse_source(str(media_path("short_hamilton_clip.mp4")), 0))
    source.open()
    try:
        frames = read_all(source)
    finally:
        source.close()
    assert [f.index for f in frames] == list(range(CLIP_FRAMES))
    assert source.stats.frames_skipped == 0


def test_a_resumed_file_keeps_the_rate():
    source = FileSource(parse_source(str(media_path("short_hamilton_clip.mp4")), 0), fps=10.0, start_frame=100)
    source.open()
    try:
        frames = read_all(source)
    finally:
        source.close()
    assert [f.index for f in frames] == list(range(100, CLIP_FRAMES, 3))


@pytest.mark.slow
def test_a_live_camera_at_5_fps_publishes_5_frames_a_second_and_counts_the_rest_as_skipped():
    server = MjpegServer(media_path("short_hamilton_clip.mp4")).start()
    source = LiveSource(parse_source(f"door={server.url}#fps=5", 0), reconnect=ReconnectPolicy(jitter=0.0),
                        open_timeout_s=5, read_timeout_s=2, fps=5.0)
    try:
        source.open()
        frames, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 3.0:  # a consumer faster than the rate: nothing is dropped
            frame = source.read(timeout=3)
            assert frame is not None
            frames.append(frame)
        stats = source.stats
    finally:
        source.close()
        server.stop()
    assert 12 <= len(frames) <= 18, len(frames)  # 5 a second for 3 s
    assert stats.frames_dropped == 0
    assert stats.frames_skipped >= 3 * len(frames)  # the camera sends ~30 a second
    # numbered as the camera's frames: the skipped ones leave gaps, about six frames each at 30 fps
    gaps = [b.index - a.index for a, b in itertools.pairwise(frames[1:])]
    assert min(gaps) >= 3 and sorted(gaps)[len(gaps) // 2] >= 4, gaps
    times = [f.capture_ts for f in frames[1:]]
    assert sorted(b - a for a, b in itertools.pairwise(times))[len(times) // 2] == pytest.approx(0.2, abs=0.05)
