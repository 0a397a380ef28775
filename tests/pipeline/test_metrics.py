from __future__ import annotations

import socket
import urllib.request

import pytest

from stream.errors import FacestreamError
from stream.pipeline.metrics import PipelineMetrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_are_served_on_loopback():
    port = free_port()
    m = PipelineMetrics(port)
    m.frames.labels("cam1").inc(3)
    m.latency.labels("cam1").observe(0.04)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'facestream_frames_total{source="cam1"} 3.0' in body
    assert "facestream_latency_seconds_bucket" in body


def test_port_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(FacestreamError, match="cannot listen"):
            PipelineMetrics(s.getsockname()[1])
