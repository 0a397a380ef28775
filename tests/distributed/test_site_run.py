"""`facestream site run` on a real local multi-node Ray cluster: two live cameras in two shards,
events on one `facestream subscribe`, a killed node's shard back on another node, and a gallery
enroll during the run reaching both shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, media_path
from tests.support.mjpeg_server import MjpegServer
from tests.support.net import free_port
from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing

pytestmark = pytest.mark.slow


def _popen(args: list, engines_dir: Path, out=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stream", *map(str, args)], cwd=REPO, env=env, stdout=out,
                            stderr=subprocess.PIPE, text=True)


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[3:5]} ended ({proc.returncode}) before {what}:\n"
                                     f"{proc.stderr.read()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _gauges(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _named(events: list[dict], source: str, name: str, after: float = 0.0) -> bool:
    return any(e["type"] == "identity" and e["source"] == source and e["identity"] == name and e["ts"] > after
               for e in events)


def test_two_cameras_in_two_shards_survive_a_node_and_take_a_gallery_change(ray_cluster, cli, engines_dir,
                                                                             tmp_path):
    cluster, workers = ray_cluster
    clip = media_path("short_hamilton_clip.mp4")
    gallery = tmp_path / "people.npz"
    cli("enroll", "--gallery", gallery, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"),
        check=True)
    mjpeg = MjpegServer(clip).start()
    rtsp = None if gstreamer_rtsp_missing() else RtspServer(clip).start()
    second = rtsp.url if rtsp else MjpegServer(clip).start().url  # the RTSP camera when GStreamer is here
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({
        "cameras": [f"door={mjpeg.url}", f"hall={second}"], "gallery": str(gallery),
        "sharding": {"cameras_per_shard": 1, "events_bind": "tcp://127.0.0.1:0"}, "output": {"heartbeat_s": 1.0}}))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    status_path, events_path = tmp_path / "status.json", tmp_path / "events.jsonl"
    metrics_port = free_port()
    driver = _popen(["site", "run", "--address", cluster.address, "--config", site, "--publish", endpoint,
                     "--status-every", "1", "--status-json", status_path, "--metrics-port", metrics_port],
                    engines_dir)
    subscriber = _popen(["subscribe", "--connect", endpoint, "--out", events_path], engines_dir)
    procs = (driver, subscriber)
    try:
        _wait(lambda: _named(_events(events_path), "door", "lin-manuel-miranda")
              and _named(_events(events_path), "hall", "lin-manuel-miranda"), 180,
              "lin-manuel-miranda named on both cameras", procs)
        status = json.loads(status_path.read_text())
        assert {s["cameras"][0] for s in status["shards"].values()} == {"door", "hall"}
        _wait(lambda: 'facestream_site_shard_up{shard="shard-0"} 1.0' in _gauges(metrics_port), 30,
              "the site's metrics")
        events = _events(events_path)
        assert {e["origin"] for e in events if e["source"] in ("door", "hall")} == {"shard-0", "shard-1"}

        # a gallery change on the driver reaches both shards
        enrolled = time.time()
        cli("enroll", "--gallery", gallery, "--name", "alex-lacamoire", media_path("alex-lacamoire.png"), check=True)
        _wait(lambda: _named(_events(events_path), "door", "alex-lacamoire", enrolled)
              and _named(_events(events_path), "hall", "alex-lacamoire", enrolled), 120,
              "alex-lacamoire named on both cameras after the enroll", procs)

        # kill the node of door's shard: Ray restarts the shard on another node, door's events resume
        shard = next(name for name, s in status["shards"].items() if s["cameras"] == ["door"])
        node_id = _wait(lambda: json.loads(status_path.read_text())["shards"][shard].get("node_id"), 10,
                        "the shard's node id")
        victim = next(w for w in workers if w.node_id == node_id)
        killed = time.time()
        cluster.remove_node(victim, allow_graceful=False)
        back = _wait(lambda: (s := json.loads(status_path.read_text())["shards"][shard])["up"]
                     and s["node_id"] != node_id and s, 120, "the shard back on another node", procs)
        assert back["restarts"] >= 1
        _wait(lambda: f'facestream_site_shard_restarts{{shard="{shard}"}} 1.0' in _gauges(metrics_port), 30,
              "the restart in the site's metrics")
        _wait(lambda: _named(_events(events_path), "door", "lin-manuel-miranda", killed), 120,
              "door's events resuming after its node died", procs)
        assert _named(_events(events_path), "hall", "lin-manuel-miranda", killed)  # the other shard never stopped
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        driver_err = driver.communicate(timeout=120)[1]
        subscriber.communicate(timeout=30)
        mjpeg.stop()
        if rtsp:
            rtsp.kill()
    assert driver.returncode == 0, driver_err[-3000:]
    assert "Traceback" not in driver_err
