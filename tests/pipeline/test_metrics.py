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


def test_every_event_sink_s_figures_are_served():
    port = free_port()
    m = PipelineMetrics(port)
    m.update_sinks({"web": {"delivered": 7, "dropped": 2, "queued": 0},
                    "webhook": {"delivered": 5, "dropped": 1, "queued": 3}})
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in ('facestream_sink_delivered{sink="web"} 7.0', 'facestream_sink_dropped{sink="web"} 2.0',
                 'facestream_sink_queued{sink="webhook"} 3.0', 'facestream_sink_dropped{sink="webhook"} 1.0'):
        assert line in body


def test_port_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(FacestreamError, match="cannot listen"):
            PipelineMetrics(s.getsockname()[1])


def test_a_restarted_publisher_serves_the_run_s_totals_restarts_and_live_drops(tmp_path):
    import multiprocessing as mp

    from stream.pipeline.ledger import RunLedger

    ledger = RunLedger.create(mp.get_context("spawn"), {"cam1": 4}, ["detect-0", "publish", "embed", "reader-cam1"],
                              tmp_path / "journal")
    ledger.sources["cam1"]["frames"] = 120  # published by the publisher that was killed
    ledger.sources["cam1"]["live_dropped"] = 7  # the reader keeps this current
    ledger.incarnations[:] = [3, 2, 1, 1]  # detect-0 restarted twice, publish once
    port = free_port()
    m = PipelineMetrics(port)
    m.resume(ledger)
    m.frames.labels("cam1").inc()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'facestream_frames_total{source="cam1"} 121.0' in body
    assert 'facestream_frames_dropped{source="cam1"} 7.0' in body
    assert 'facestream_worker_restarts{worker="detect-0"} 2.0' in body
    assert 'facestream_worker_restarts{worker="publish"} 1.0' in body


def test_whether_each_source_is_up_is_served_from_the_ledger(tmp_path):
    import multiprocessing as mp

    from stream.pipeline.ledger import RunLedger

    ledger = RunLedger.create(mp.get_context("spawn"), {"door": 2, "gate": 2}, ["publish"], tmp_path / "journal")
    ledger.sources["door"]["online"] = 1  # the readers write these
    ledger.sources["gate"]["reconnects"] = 4
    port = free_port()
    m = PipelineMetrics(port)
    m.update(ledger)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'facestream_source_online{source="door"} 1.0' in body
    assert 'facestream_source_online{source="gate"} 0.0' in body
    assert 'facestream_source_reconnects{source="gate"} 4.0' in body
