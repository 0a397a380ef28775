"""Probing cameras and streams before the pipeline starts: real servers on 127.0.0.1, real FFmpeg."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stream.errors import FacestreamError
from stream.sources.probe import probe_live, probe_live_sources
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.mjpeg_server import MjpegServer
from tests.support.net import free_port

SECRET = "S3cretXYZ"


@pytest.fixture
def camera() -> Iterator[MjpegServer]:
    server = MjpegServer(media_path("short_hamilton_clip.mp4")).start()
    yield server
    server.stop()


@contextmanager
def silent_servers(n: int) -> Iterator[list[int]]:
    """Ports where a connection is accepted (by the kernel) and never answered: each open waits for its timeout."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            socks.append(s)
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_a_reachable_camera_gives_its_size(camera):
    url = camera.url.replace("http://", f"http://admin:{SECRET}@") + f"?password={SECRET}"
    probe = probe_live(parse_source(f"door={url}", 0), open_timeout_s=5, read_timeout_s=3)
    assert (probe.width, probe.height) == (640, 360)


def test_an_unreachable_stream_is_offline_not_an_error():
    # it may come up later: its reader retries it (tests/sources/test_live_offline.py)
    spec = parse_source(f"door=rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/live?token={SECRET}", 0)
    probe = probe_live(spec, open_timeout_s=2, read_timeout_s=2)
    assert probe.offline == "connection refused" and (probe.width, probe.height) == (0, 0)


def test_a_missing_camera_is_not_available():
    with pytest.raises(FacestreamError, match=r"^desk \(/dev/video99\): camera not available$"):
        probe_live(parse_source("desk=/dev/video99", 0))


def test_a_file_is_not_probed_here():
    with pytest.raises(ValueError, match="cameras and streams"):
        probe_live(parse_source("clip.mp4", 0))


@pytest.mark.slow
def test_several_sources_cost_one_timeout_and_one_line_names_every_bad_one(camera):
    # one after the other, the three silent servers alone would take 3 timeouts; at once, one timeout plus
    # spawning 7 probe processes (seconds on a loaded 2-core machine): a long timeout keeps the two apart
    timeout = 8.0
    with silent_servers(3) as ports:
        specs = [parse_source(f"c{i}=http://admin:{SECRET}@127.0.0.1:{p}/video.mjpg", i) for i, p in enumerate(ports)]
        specs += [parse_source(f"door={camera.url}", 3), parse_source("desk=/dev/video99", 4),
                  parse_source("hall=/dev/video98", 5), parse_source(f"gate=rtsp://admin:{SECRET}@:554/live", 6)]
        t0 = time.monotonic()
        with pytest.raises(FacestreamError) as info:
            probe_live_sources(specs, open_timeout_s=timeout, read_timeout_s=timeout)
        elapsed = time.monotonic() - t0
    message = str(info.value)
    assert "\n" not in message and SECRET not in message
    # the silent servers are down, not bad input: their readers would retry them
    assert [f"c{i} (" in message for i in range(3)] == [False] * 3
    assert "desk (/dev/video99): camera not available" in message and "door" not in message
    assert "hall (/dev/video98): camera not available" in message
    assert "gate (rtsp://admin:***@:554/live): malformed URL: no host" in message
    assert elapsed < 2.5 * timeout, f"{elapsed:.1f} s: the probes ran one after the other"


@pytest.mark.slow
def test_silent_servers_are_offline_each_warned_about_once_and_masked(caplog):
    caplog.set_level(logging.WARNING, logger="stream.sources.probe")
    with silent_servers(2) as ports:
        specs = [parse_source(f"c{i}=http://admin:{SECRET}@127.0.0.1:{p}/video.mjpg", i) for i, p in enumerate(ports)]
        probes = probe_live_sources(specs, open_timeout_s=2, read_timeout_s=2)
    assert [p.offline for p in probes] == ["connected, but no answer"] * 2  # asked over HTTP: the headers never came
    warnings = [r.getMessage() for r in caplog.records]
    assert [w.split(":")[0] for w in warnings] == ["c0", "c1"], warnings
    assert all("offline at start" in w and "retrying every 0.5-10 s" in w and SECRET not in w for w in warnings)


@pytest.mark.slow
def test_several_reachable_sources_all_answer(camera):
    specs = [parse_source(f"c{i}={camera.url}", i) for i in range(2)]
    probes = probe_live_sources(specs, open_timeout_s=5, read_timeout_s=3)
    assert [(p.width, p.height) for p in probes] == [(640, 360)] * 2
