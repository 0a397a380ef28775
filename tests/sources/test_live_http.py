"""A live MJPEG camera over HTTP (a real server on 127.0.0.1, real FFmpeg): newest frame, reconnection."""

from __future__ import annotations

import logging
import time

import pytest

from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.mjpeg_server import MjpegServer

pytestmark = pytest.mark.slow


@pytest.fixture
def camera():
    server = MjpegServer(media_path("short_hamilton_clip.mp4")).start()
    yield server
    server.stop()


def live(url: str) -> LiveSource:
    policy = ReconnectPolicy(initial_s=0.2, max_s=1.0, jitter=0.0)
    return LiveSource(parse_source(f"door={url}", 0), reconnect=policy, open_timeout_s=5, read_timeout_s=2)


def test_newest_frame_only_for_a_slow_consumer(camera):
    source = live(camera.url)
    assert source.spec.kind == "stream"
    source.open()
    try:
        first = source.read(timeout=5)
        assert first is not None and first.image.shape == (360, 640, 3)
        ages = []
        for _ in range(8):
            time.sleep(0.2)  # 5 fps against a 30 fps camera
            frame = source.read(timeout=3)
            ages.append(time.time() - frame.capture_ts)
        assert source.stats.frames_dropped > 20, source.stats
        assert max(ages) < 0.2, f"newest frame only: ages {ages}"
    finally:
        source.close()


def test_camera_that_drops_off_and_returns(camera, caplog):
    caplog.set_level(logging.WARNING, logger="stream.sources.live")
    source = live(camera.url)
    source.open()
    try:
        assert source.read(timeout=5) is not None
        camera.stop()
        time.sleep(1.5)
        assert source.stats.reconnects >= 2, source.stats
        camera.start()  # same port
        deadline = time.monotonic() + 15
        while True:
            frame = source.read(timeout=5)
            if frame is not None and time.time() - frame.capture_ts < 0.5 and source.stats.last_error:
                break
            assert time.monotonic() < deadline, "frames did not flow again"
        assert any("reconnected" in r.getMessage() for r in caplog.records)
    finally:
        source.close()
    assert not source._thread.is_alive()
