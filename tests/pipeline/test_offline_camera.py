"""`facestream run` with a camera that is down at start: real processes, a real MJPEG camera on
127.0.0.1 that comes up late, the real clip, a gallery made with `facestream enroll`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import pytest

from tests.conftest import assert_one_line_error, media_path
from tests.support.mjpeg_server import MjpegServer
from tests.support.net import free_port
from tests.support.procs import facestream_run, wait_for

pytestmark = pytest.mark.slow

SECRET = "S3cretXYZ"
CAMERA_LATE_S = 20.0


@pytest.fixture(scope="module")
def gallery(cli, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gallery") / "people.npz"
    cli("enroll", "--gallery", path, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"), check=True)
    return path


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  open_timeout_s: 3\n  read_timeout_s: 3\n  reconnect_initial_s: 0.5\n"
                    f"  reconnect_max_s: 2\n{extra}output:\n  heartbeat_s: 0.5\n"
                    "pipeline:\n  max_frame_width: 640\n  max_frame_height: 360\n")
    return path


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _cam_states(events: list[dict]) -> list[dict]:
    return [e["stats"]["sources"]["cam"] for e in events if e["type"] == "heartbeat"]


def test_a_camera_down_at_start_is_picked_up_when_it_comes_up(engines_dir, default_model, gallery, tmp_path):
    port = free_port()  # nothing listens there when the run starts: connection refused
    events, err_path, summary = tmp_path / "events.jsonl", tmp_path / "stderr.txt", tmp_path / "summary.json"
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    camera = MjpegServer(media_path("short_hamilton_clip.mp4"), port=port)
    started = time.monotonic()
    try:
        with facestream_run(["run", "--source", f"cam=http://127.0.0.1:{port}/video.mjpg", "--gallery", gallery,
                             "--config", _config(tmp_path), "--events-out", events, "--summary-json", summary,
                             "--no-progress"], env, err_path) as proc:
            wait_for(proc, err_path, "heartbeat showing the camera offline", CAMERA_LATE_S,
                     lambda: any(not s["online"] and s["offline_s"] for s in _cam_states(_events(events))))
            time.sleep(max(0.0, started + CAMERA_LATE_S - time.monotonic()))  # the camera comes up late
            camera.start()
            wait_for(proc, err_path, "identity event for Lin-Manuel Miranda", 60,
                     lambda: any(e["type"] == "identity" and e["identity"] == "lin-manuel-miranda"
                                 for e in _events(events)))
            wait_for(proc, err_path, "heartbeat showing the camera online", 10,
                     lambda: any(s["online"] for s in _cam_states(_events(events))))
    finally:
        camera.stop()
    output = err_path.read_text()
    assert proc.returncode == 0 and "Traceback" not in output, output
    assert "cam: offline at start (connection refused); retrying every 0.5-2 s" in output, output
    assert "cam: online after" in output, output
    states = _cam_states(_events(events))
    first_online = next(i for i, s in enumerate(states) if s["online"])
    assert not any(s["online"] for s in states[:first_online]) and first_online > 0, states
    offline, online = states[first_online - 1], states[first_online]  # the camera was down ~20 s: retried
    assert offline["reconnects"] >= 3 and offline["last_error"] == "connection refused", offline
    assert offline["offline_s"] >= 10, offline
    assert online["offline_s"] is None and online["reconnects"] >= offline["reconnects"], online
    result = json.loads(summary.read_text())
    assert result["interrupted"] and result["frames"] >= 3 and not result["errors"], result
    assert result["per_source"]["cam"]["reconnects"] >= 1, result["per_source"]


def test_a_camera_down_too_long_ends_alone_and_the_run_exits_1(cli, tmp_path):
    clip = media_path("short_hamilton_clip.mp4")
    url = f"http://admin:{SECRET}@127.0.0.1:{free_port()}/video.mjpg?password={SECRET}"
    summary = tmp_path / "summary.json"
    proc = cli("run", "--source", f"door={url}", "--source", f"clip={clip}", "--no-progress",
               "--config", _config(tmp_path, "  give_up_after_s: 3\n"), "--summary-json", summary, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc, "facestream: door: http://admin:***@127.0.0.1:", "offline for 3 s, gave up",
                          "(connection refused)")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: door")]
    assert len(errors) == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr + summary.read_text(), proc.stderr
    result = json.loads(summary.read_text())
    frame_count = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert result["per_source"]["clip"]["frames"] == frame_count, result["per_source"]
    assert list(result["errors"]) == ["door"], result["errors"]


@pytest.mark.parametrize(("source", "needle"), [
    ("desk=/dev/video7", "desk (/dev/video7): camera not available"),
    ("7", "cam0 (7): camera not available"),
    (f"door=rtsp://admin:{SECRET}@127.0.0.1:99999/live", "door (rtsp://admin:***@127.0.0.1:99999/live): "
                                                          "malformed URL: port 99999 is out of range"),
], ids=["device", "index", "url"])
def test_input_that_can_never_work_exits_2_in_one_line(cli, source, needle):
    if Path("/dev/video7").exists():  # camera index 7 is /dev/video7 too (V4L2)
        pytest.skip("this machine has a /dev/video7")
    proc = cli("run", "--source", source, "--no-progress", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, needle)
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: ")]) == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr, proc.stderr
