"""A live MJPEG camera over HTTP (a real server on 127.0.0.1, real FFmpeg): newest frame, reconnection."""

from __future__ import annotations

import logging
import time

import pytest

from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.live import assert_newest_frame_only, wait_until_frames_flow_again
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
        assert_newest_frame_only(source, max_age_s=0.2, reads=8)
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
        wait_until_frames_flow_again(source, fresh_s=0.5)
        assert any("reconnected" in r.getMessage() for r in caplog.records)
    finally:
        source.close()
    assert not source._thread.is_alive()
