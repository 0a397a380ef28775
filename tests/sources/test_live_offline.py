"""A camera that is down when a run starts stays watched: a real MJPEG server on 127.0.0.1 that comes
up late on the port the source was given, real FFmpeg."""

from __future__ import annotations

import logging
import time

import pytest

from stream.errors import FacestreamError
from stream.sources.base import SourceTimeout
from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.probe import check_stream_url, probe_live, probe_live_sources
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.live import wait_until_frames_flow_again
from tests.support.mjpeg_server import MjpegServer
from tests.support.net import free_port

SECRET = "S3cretXYZ"


def live(url: str, **kw) -> LiveSource:
    policy = ReconnectPolicy(initial_s=0.2, max_s=1.0, jitter=0.0)
    return LiveSource(parse_source(f"door={url}", 0), reconnect=policy, open_timeout_s=3, read_timeout_s=2, **kw)


@pytest.mark.slow
def test_a_camera_down_at_open_is_retried_and_read_once_it_comes_up(caplog):
    caplog.set_level(logging.WARNING, logger="stream.sources.live")
    port = free_port()  # nothing listens there yet: connection refused
    source = live(f"http://127.0.0.1:{port}/video.mjpg")
    source.open()  # no error: the camera may come up later
    camera = MjpegServer(media_path("short_hamilton_clip.mp4"), port=port)
    try:
        with pytest.raises(SourceTimeout):
            source.read(timeout=1.5)
        stats = source.stats
        assert stats.reconnects >= 2 and not stats.online, stats
        assert stats.last_error == "connection refused" and stats.offline_since is not None, stats
        camera.start()  # the same port
        frame = wait_until_frames_flow_again(source)
        assert frame.image.shape == (360, 640, 3)
        assert source.stats.online and source.stats.offline_since is None, source.stats
        assert any("door: online after" in r.getMessage() for r in caplog.records)
    finally:
        source.close()
        camera.stop()
    assert not source._thread.is_alive()


@pytest.mark.slow
def test_a_stream_down_too_long_ends_with_one_masked_line():
    url = f"http://admin:{SECRET}@127.0.0.1:{free_port()}/video.mjpg?password={SECRET}"
    source = live(url, give_up_after_s=1.0)
    source.open()
    t0 = time.monotonic()
    try:
        with pytest.raises(FacestreamError) as info:
            while time.monotonic() - t0 < 10:
                try:
                    source.read(timeout=0.5)
                except SourceTimeout:
                    continue
    finally:
        source.close()
    message = str(info.value)
    assert time.monotonic() - t0 < 5, "gave up late"
    assert message == f"{source.spec.display}: offline for 1 s, gave up (connection refused)"
    assert SECRET not in message and "\n" not in message


def test_an_unreachable_stream_is_offline_with_a_masked_warning_not_an_error(caplog):
    caplog.set_level(logging.WARNING, logger="stream.sources.probe")
    spec = parse_source(f"door=rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/live?token={SECRET}", 0)
    [probe] = probe_live_sources([spec], open_timeout_s=2, read_timeout_s=2,
                                 retry=ReconnectPolicy(initial_s=0.5, max_s=10), give_up_after_s=60)
    assert probe.offline == "connection refused"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == (f"door: offline at start (connection refused); retrying every 0.5-10 s; "
                       f"giving up after 60 s ({spec.display})")
    assert SECRET not in warning


@pytest.mark.parametrize(("uri", "shown", "problem"), [
    ("rtsp:///live", "rtsp:///live", "no host"),
    ("http://cam:99999/video.mjpg", "http://cam:99999/video.mjpg", "port 99999 is out of range"),
    ("rtsp://cam:port/live", "rtsp://cam:port/live", "malformed host[:port]"),
    # with a malformed host the password cannot be told from the host: nothing after the scheme shows
    (f"rtsp://admin:{SECRET}@ca m/live", "rtsp://***", "malformed host[:port]"),
    (f"rtsp://admin:{SECRET}@cam:port/live", "rtsp://***", "malformed host[:port]"),
])
def test_a_malformed_stream_url_is_an_error_at_start(uri, shown, problem):
    spec = parse_source(f"door={uri}", 0)
    with pytest.raises(FacestreamError) as info:
        probe_live(spec, open_timeout_s=1, read_timeout_s=1)
    assert str(info.value) == f"door ({shown}): malformed URL: {problem}"
    assert SECRET not in str(info.value)


def test_urls_that_may_work_pass_the_check():
    for uri in ("rtsp://admin:p#w?x@z@10.0.0.5:554/live", "http://[::1]:8080/v.mjpg", "udp://@:5000",
                "srt://:9000?mode=listener", "https://cam.example.org/live.m3u8"):
        check_stream_url(parse_source(uri, 0))


def test_a_missing_camera_device_is_an_error_at_start():
    with pytest.raises(FacestreamError, match=r"^desk \(/dev/video7\): camera not available$"):
        probe_live_sources([parse_source("desk=/dev/video7", 0)])


@pytest.mark.slow
def test_a_camera_lost_mid_run_for_too_long_ends_with_an_error():
    camera = MjpegServer(media_path("short_hamilton_clip.mp4")).start()
    source = live(camera.url, give_up_after_s=1.5)
    source.open()
    try:
        assert source.read(timeout=5) is not None and source.stats.online
        camera.stop()
        lost = time.monotonic()
        with pytest.raises(FacestreamError, match=r": offline for [12] s, gave up \((stream read failed|connection "
                                                  r"refused)\)$"):
            while time.monotonic() - lost < 15:
                try:
                    source.read(timeout=0.5)
                except SourceTimeout:
                    continue
        assert time.monotonic() - lost < 1.5 + 2 + 3, "gave up late"  # + a read timeout, + slack
        assert source.stats.reconnects >= 1 and not source.stats.online
    finally:
        source.close()
        camera.stop()
