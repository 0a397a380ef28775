"""Frames skipped for the processing rate are their own count: in the metrics and the summary line,
never among the dropped or lost ones."""

from __future__ import annotations

import multiprocessing as mp
import urllib.request

from stream.cli.run_cmd import format_summary
from stream.pipeline.ledger import RunLedger
from stream.pipeline.metrics import PipelineMetrics
from tests.support.net import free_port


def test_skipped_frames_are_served_apart_from_dropped_and_lost(tmp_path):
    ledger = RunLedger.create(mp.get_context("spawn"), {"door": 2}, ["publish"], tmp_path / "journal")
    ledger.sources["door"]["skipped"] = 183  # the reader keeps this current
    port = free_port()
    PipelineMetrics(port).update(ledger)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'facestream_frames_skipped{source="door"} 183.0' in body
    assert 'facestream_frames_dropped{source="door"} 0.0' in body
    assert 'facestream_frames_lost{source="door"} 0.0' in body


def test_the_summary_line_says_how_many_were_skipped():
    line = format_summary({"frames": 92, "skipped": 183, "dropped": 0, "corrupt": 0})
    assert line.endswith("; frames 183 skipped")
    assert "skipped" not in format_summary({"frames": 275, "skipped": 0})
    assert "frames 4 dropped, 183 skipped" in format_summary({"frames": 92, "skipped": 183, "dropped": 4})
