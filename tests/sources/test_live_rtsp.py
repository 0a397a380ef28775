"""Live network streams against a real GStreamer RTSP server on 127.0.0.1."""

from __future__ import annotations

import logging
import time

import pytest

from stream.errors import FacestreamError
from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.live import assert_newest_frame_only, wait_until_frames_flow_again
from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing

pytestmark = pytest.mark.slow

_missing = gstreamer_rtsp_missing()
if _missing:
    pytest.skip(_missing, allow_module_level=True)


@pytest.fixture
def server():
    srv = RtspServer(media_path("short_hamilton_clip.mp4")).start()
    yield srv
    srv.kill()


def live(url: str, **kw) -> LiveSource:
    policy = ReconnectPolicy(initial_s=0.2, max_s=1.0, jitter=0.0)
    return LiveSource(parse_source(f"cam={url}", 0), reconnect=policy, open_timeout_s=5, read_timeout_s=3, **kw)


def test_reads_fresh_frames_and_counts_drops_for_a_slow_consumer(server):
    source = live(server.url)
    source.open()
    try:
        first = source.read(timeout=5)
        assert first is not None and first.image.shape == (360, 640, 3)
        time.sleep(2.0)  # the FFmpeg probe buffer drains, then frames arrive in real time
        indices = [f.index for f in assert_newest_frame_only(source, max_age_s=0.15)]
        assert indices == sorted(indices) and len(set(indices)) == 10
    finally:
        source.close()


def test_reconnects_after_the_server_dies_and_returns(server, caplog):
    caplog.set_level(logging.WARNING, logger="stream.sources.live")
    source = live(server.url)
    source.open()
    try:
        assert source.read(timeout=5) is not None
        port = server.port
        server.kill()
        time.sleep(1.5)  # several reconnect attempts fail: connection refused
        assert source.stats.reconnects >= 2
        attempts = [r.getMessage() for r in caplog.records if "reconnect attempt" in r.getMessage()]
        assert len(attempts) >= 2 and "attempt 1 " in attempts[0]
        server.port = port
        server.start()
        wait_until_frames_flow_again(source)
        assert any("reconnected" in r.getMessage() for r in caplog.records)
    finally:
        source.close()
    assert not source._thread.is_alive()


def test_unreachable_stream_opens_offline_and_gives_up_with_one_line():
    source = live("rtsp://127.0.0.1:9/stream", give_up_after_s=1.0)
    source.open()  # down is not an error: it may come up (tests/sources/test_live_offline.py)
    try:
        with pytest.raises(FacestreamError, match=r"^rtsp://127.0.0.1:9/stream: offline for 1 s, gave up"):
            for _ in range(20):
                try:
                    source.read(timeout=0.5)
                except TimeoutError:
                    continue
    finally:
        source.close()


def test_missing_camera_fails_open():
    source = LiveSource(parse_source("/dev/video99", 0), open_timeout_s=1, read_timeout_s=1)
    with pytest.raises(FacestreamError, match="camera not available"):
        source.open()
