"""`facestream run` on a live camera faster than the pipeline, which sends a corrupt part now and then:
real processes, a real MJPEG camera on 127.0.0.1, real FFmpeg. Frames the newest-frame policy
dropped, frames that did not decode and frames lost with a restarted worker are three different
things, each counted truthfully in the summary, the heartbeats and the metrics."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import media_path
from tests.support.mjpeg_server import MjpegServer
from tests.support.net import free_port
from tests.support.procs import facestream_run, wait_for

pytestmark = pytest.mark.slow

BAD_EVERY = 40


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _beats(path: Path) -> list[dict]:
    return [e["stats"] for e in _events(path) if e["type"] == "heartbeat"]


def _gauge(metrics: str, name: str) -> float:
    line = [ln for ln in metrics.splitlines() if ln.startswith(f'{name}{{source="cam"}}')]
    return float(line[0].split()[-1]) if line else 0.0


def test_dropped_corrupt_and_lost_are_counted_apart(engines_dir, default_model, tmp_path):
    # 60 fps: faster than the pipeline on any machine these tests run on, so frames are dropped
    camera = MjpegServer(media_path("short_hamilton_clip.mp4"), fps=60,
                         bad_part=lambda k: k % BAD_EVERY == BAD_EVERY - 1).start()
    events, err_path, summary = tmp_path / "events.jsonl", tmp_path / "stderr.txt", tmp_path / "summary.json"
    metrics_port, web_port = free_port(), free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"output:\n  heartbeat_s: 0.5\n  metrics_port: {metrics_port}\n"
                      f"web:\n  http: 127.0.0.1:{web_port}\n"
                      "pipeline:\n  max_frame_width: 640\n  max_frame_height: 360\n")
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    metrics, page = "", []

    def corrupt_counted_everywhere() -> bool:
        nonlocal metrics, page
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        page = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/cameras", timeout=5).read())
        beats = _beats(events)
        return bool(beats and beats[-1]["sources"]["cam"]["corrupt"] >= 3 and page and page[0]["corrupt"] >= 3
                    and _gauge(metrics, "facestream_frames_corrupt") >= 3)

    try:
        with facestream_run(["run", "--source", f"cam={camera.url}", "--config", config, "--events-out", events,
                             "--summary-json", summary, "--no-progress"], env, err_path) as proc:
            wait_for(proc, err_path, "heartbeat with dropped frames", 120,
                     lambda: any(b["dropped"] > 0 and b["frames"] >= 20 for b in _beats(events)), poll_s=0.5)
            # the camera sends a bad part every 0.7 s: wait (with a deadline) until several have reached the
            # run's heartbeats, its metrics and its page, rather than for a fixed time
            wait_for(proc, err_path, "3 corrupt parts counted in heartbeats, metrics and page", 60,
                     corrupt_counted_everywhere, poll_s=0.5)
    finally:
        camera.stop()
    output = err_path.read_text()
    assert proc.returncode == 0 and "Traceback" not in output, output
    assert "lost with a restarted worker" not in output, output  # nothing restarted: nothing was lost
    assert "stream lost" not in output and "reconnect" not in output, output  # a bad part is no reconnect
    result = json.loads(summary.read_text())
    cam = result["per_source"]["cam"]
    assert not any(result["worker_restarted"].values()), result["worker_restarted"]
    assert cam["lost"] == 0 and cam["lost_frames"] == [] and result["lost"] == 0, cam
    assert cam["dropped"] > 0 and result["dropped"] == cam["dropped"], cam
    assert cam["corrupt"] >= 3 and result["corrupt"] == cam["corrupt"] and cam["reconnects"] == 0, cam
    last = _beats(events)[-1]
    assert last["lost"] == 0 and last["sources"]["cam"]["lost"] == 0, last
    assert last["sources"]["cam"]["dropped"] > 0 and last["sources"]["cam"]["corrupt"] >= 3, last
    assert 'facestream_frames_lost{source="cam"} 0.0' in metrics, metrics
    corrupt = [ln for ln in metrics.splitlines() if ln.startswith('facestream_frames_corrupt{source="cam"}')]
    assert corrupt and float(corrupt[0].split()[-1]) >= 3, metrics
    # the web page's camera state: the same three figures, from the same counters
    shown = page[0]
    assert shown["name"] == "cam" and shown["lost"] == 0 and shown["dropped"] > 0 and shown["corrupt"] >= 3, page
