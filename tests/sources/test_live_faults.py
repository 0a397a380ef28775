"""Live HTTP sources that misbehave without going away: corrupt MJPEG parts, error pages, HTML.

Real servers on 127.0.0.1 and OpenCV's real FFmpeg backend. A corrupt part is one frame skipped
and counted, never a reconnect; an error page is named by its HTTP status or content type, once.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stream.errors import FacestreamError
from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.probe import probe_live
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.mjpeg_server import MjpegServer

pytestmark = pytest.mark.slow

SECRET = "S3cretXYZ"


def live(url: str, give_up_after_s: float | None = None) -> LiveSource:
    policy = ReconnectPolicy(initial_s=0.2, max_s=0.5, jitter=0.0)
    return LiveSource(parse_source(f"door={url}", 0), reconnect=policy, open_timeout_s=3, read_timeout_s=2,
                      give_up_after_s=give_up_after_s)


def read_for(source: LiveSource, seconds: float) -> int:
    """Frames read in ``seconds`` by a consumer that keeps up."""
    frames, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        if source.read(timeout=3) is not None:
            frames += 1
    return frames


@pytest.mark.parametrize("every", [10, 50])
def test_a_corrupt_part_now_and_then_is_skipped_not_a_reconnect(every, caplog):
    caplog.set_level(logging.WARNING, logger="stream.sources.live")
    camera = MjpegServer(media_path("short_hamilton_clip.mp4"), bad_part=lambda k: k % every == every - 1).start()
    source = live(camera.url)
    try:
        source.open()
        frames = read_for(source, 4.0 if every == 10 else 6.0)
    finally:
        source.close()
        camera.stop()
    stats = source.stats
    assert stats.reconnects == 0 and not any("reconnect" in r.getMessage() for r in caplog.records), stats
    assert stats.frames_corrupt >= (3 if every == 10 else 2), stats
    assert frames >= 40 and stats.online, stats


def test_a_first_part_that_is_corrupt_still_gives_frames():
    camera = MjpegServer(media_path("short_hamilton_clip.mp4"), bad_part=lambda k: k == 0).start()
    source = live(camera.url)
    try:
        source.open()
        first = source.read(timeout=5)
        assert first is not None and first.image.shape == (360, 640, 3)
        frames = read_for(source, 1.0)
    finally:
        source.close()
        camera.stop()
    assert frames >= 10 and source.stats.reconnects == 0, source.stats
    assert source.stats.frames_corrupt == 1, source.stats


def test_a_probe_of_a_camera_whose_first_part_is_corrupt_finds_it_up():
    camera = MjpegServer(media_path("short_hamilton_clip.mp4"), bad_part=lambda k: k == 0).start()
    try:
        probe = probe_live(parse_source(f"door={camera.url}", 0), open_timeout_s=3, read_timeout_s=2)
    finally:
        camera.stop()
    assert probe.offline is None and (probe.width, probe.height) == (640, 360), probe


@contextmanager
def web_server(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """Answers every GET with ``status`` and ``body``, like a camera's login page or a broken proxy."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://admin:{SECRET}@127.0.0.1:{httpd.server_address[1]}/video.mjpg?password={SECRET}"
    finally:
        httpd.shutdown()
        httpd.server_close()


ERROR_PAGE = (500, "text/plain", b"boom", "HTTP 500 Internal Server Error")
HTML_PAGE = (200, "text/html; charset=utf-8", b"<html><body>Please log in</body></html>",
             "serves text/html, not video")


@pytest.mark.parametrize(("status", "content_type", "body", "reason"), [ERROR_PAGE, HTML_PAGE], ids=["500", "html"])
def test_a_probe_names_the_http_status_or_the_content_type(status, content_type, body, reason):
    with web_server(status, content_type, body) as url:
        probe = probe_live(parse_source(f"door={url}", 0), open_timeout_s=3, read_timeout_s=2)
    assert probe.offline == reason, probe


@pytest.mark.parametrize(("status", "content_type", "body", "reason"), [ERROR_PAGE, HTML_PAGE], ids=["500", "html"])
def test_a_live_source_says_why_once_and_opencv_stays_quiet(status, content_type, body, reason, caplog, capfd):
    caplog.set_level(logging.INFO, logger="stream.sources.live")
    with web_server(status, content_type, body) as url:
        source = live(url, give_up_after_s=2.0)
        source.open()
        try:
            with pytest.raises(FacestreamError) as failure:
                while True:
                    source.read(timeout=5)
        finally:
            source.close()
    message = str(failure.value)
    assert reason in message and "admin:***@127.0.0.1" in message and SECRET not in message, message
    assert source.stats.reconnects >= 3, source.stats  # retried several times, said once
    said = [r.getMessage() for r in caplog.records if reason in r.getMessage()]
    assert len(said) == 1 and SECRET not in said[0] and "http://admin:***@127.0.0.1" in said[0], said
    err = capfd.readouterr().err
    assert "VIDEOIO" not in err and "WARN" not in err and SECRET not in err, err
