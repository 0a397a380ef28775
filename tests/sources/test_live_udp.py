"""A live MPEG-TS stream over UDP on 127.0.0.1 (GStreamer sends the clip in real time, FFmpeg reads)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.net import free_port
from tests.support.rtsp import SYSTEM_PYTHON, gstreamer_missing

pytestmark = pytest.mark.slow

SENDER = Path(__file__).parents[1] / "support" / "udp_sender.py"


_missing = gstreamer_missing(("qtdemux", "h264parse", "mpegtsmux", "udpsink"))
if _missing:
    pytest.skip(_missing, allow_module_level=True)


def test_reads_a_udp_stream_and_notices_when_it_stops():
    port = free_port(socket.SOCK_DGRAM)
    source = LiveSource(parse_source(f"yard=udp://127.0.0.1:{port}", 0), open_timeout_s=3, read_timeout_s=1,
                        reconnect=ReconnectPolicy(initial_s=0.2, max_s=0.5, jitter=0.0))
    sender: list[subprocess.Popen] = []
    # The receiver binds first (open() waits for a first frame); the sender starts a moment later,
    # so the stream's first keyframe is not lost before anyone listens.
    threading.Timer(1.0, lambda: sender.append(subprocess.Popen(
        [SYSTEM_PYTHON, str(SENDER), str(media_path("short_hamilton_clip.mp4")), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))).start()
    try:
        source.open()
        frames, ages = [], []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            frame = source.read(timeout=3)
            assert frame is not None
            ages.append(time.time() - frame.capture_ts)
            frames.append(frame)
        assert all(f.image.shape == (360, 640, 3) for f in frames)
        assert len(frames) > 60, "about 30 fps for 4 s"
        assert max(ages[-30:]) < 0.2, "each frame is fresh when read"
        sender[0].kill()
        sender[0].wait(10)
        deadline = time.monotonic() + 8  # no datagrams: the read times out and reconnection starts
        while not source.stats.reconnects and time.monotonic() < deadline:
            time.sleep(0.2)
        assert source.stats.last_error and source.stats.reconnects >= 1, source.stats
    finally:
        source.close()
        for proc in sender:
            if proc.poll() is None:
                proc.kill()
    assert not source._thread.is_alive(), "close() returns only once the grab thread left OpenCV"
