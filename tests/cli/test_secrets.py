"""A camera password never shows: not in what `facestream run` prints, not in any /proc/<pid>/cmdline.

Real runs of the CLI (subprocesses) against closed ports and a real MJPEG camera on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, media_path
from tests.support.events import read_events
from tests.support.mjpeg_server import MjpegServer
from tests.support.net import free_port
from tests.support.procs import facestream_run, processes_with, wait_for

SECRET = "S3cretXYZ"


def closed_port_sources() -> list[str]:
    port = free_port()  # nothing listens there: the connection is refused at once
    return [
        f"rtsp://admin:{SECRET}@127.0.0.1:{port}/live",
        f"door=http://127.0.0.1:{port}/video.mjpg?user=admin&password={SECRET}",
        f"rtsp://admin:pa#{SECRET}/x?y@z@127.0.0.1:{port}/live",  # unencoded '#', '/', '?', '@'
        "rtsp://admin:${FACESTREAM_TEST_CAM_PASSWORD}" f"@127.0.0.1:{port}/live",  # expanded from the environment
    ]


@pytest.mark.slow
@pytest.mark.parametrize("source", closed_port_sources(), ids=["userinfo", "query", "unencoded", "env"])
def test_an_unreachable_camera_is_warned_about_and_given_up_on_without_the_secret(cli, monkeypatch, tmp_path, source):
    monkeypatch.setenv("FACESTREAM_TEST_CAM_PASSWORD", SECRET)  # the cli fixture passes os.environ on
    config = tmp_path / "c.yaml"  # down is not bad input: it is retried, here for 1 s
    config.write_text("sources:\n  give_up_after_s: 1\n  reconnect_initial_s: 0.2\n")
    proc = cli("run", "--source", source, "--no-progress", "--config", config, timeout=180)
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc, "127.0.0.1", "offline for 1 s, gave up (connection refused)")
    assert len([ln for ln in proc.stderr.splitlines() if "gave up" in ln and ln.startswith("facestream: ")]) == 1
    assert "offline at start (connection refused)" in proc.stderr and "reconnect attempt 1" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr, proc.stderr


def test_an_unset_variable_in_a_source_exits_2_naming_it(cli, monkeypatch):
    monkeypatch.delenv("FACESTREAM_TEST_UNSET", raising=False)
    proc = cli("run", "--source", f"door=rtsp://admin:{SECRET}@h/live?token=${{FACESTREAM_TEST_UNSET}}",
               "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "door=rtsp://admin:***@h/live", "FACESTREAM_TEST_UNSET is not set")
    assert SECRET not in proc.stdout + proc.stderr, proc.stderr


@pytest.mark.parametrize("args", [["--source", "clip.mp4", "--max-batch", f"rtsp://admin:{SECRET}@h/live"],
                                  ["--source", "clip.mp4", f"http://h/v.mjpg?token={SECRET}"]],
                         ids=["bad-value", "unrecognized"])
def test_a_command_line_error_does_not_echo_the_secret(cli, args):
    proc = cli("run", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "***" in proc.stderr, proc.stderr


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone, or another user's
    return out


def _face_events(path: Path) -> list[dict]:
    return [e for e in read_events(path) if e["type"] != "heartbeat"]


def _processes_with(marker: str) -> list[int]:
    return list(processes_with(marker))


@pytest.mark.slow
def test_no_command_line_holds_the_secret_while_a_run_reads_a_camera(engines_dir, default_model, tmp_path):
    camera = MjpegServer(media_path("short_hamilton_clip.mp4")).start()
    url = camera.url.replace("http://", f"http://admin:{SECRET}@") + f"?user=admin&password={SECRET}"
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  open_timeout_s: 5\n  read_timeout_s: 3\noutput:\n  heartbeat_s: 0.5\n"
                      "pipeline:\n  max_frame_width: 640\n  max_frame_height: 360\n")
    events, err_path = tmp_path / "events.jsonl", tmp_path / "stderr.txt"
    marker = uuid.uuid4().hex
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "FACESTREAM_TEST_MARK": marker}
    try:
        with facestream_run(["run", "--source", f"door={url}", "--config", config, "--no-progress", "--events-out",
                             events], env, err_path) as proc:
            # A face event means frames flow, so every worker is up and the run is past its start-up (a
            # heartbeat can come earlier: a stop signal then interrupts the start instead of draining).
            wait_for(proc, err_path, "face event", 90, lambda: _face_events(events), poll_s=0.2)
            ours = _processes_with(marker)
            assert len(ours) >= 5, "supervisor + reader, detect, embed, publish"
            cmdlines = _cmdlines()
            leaking = {pid: line for pid, line in cmdlines.items() if SECRET.encode() in line}
            assert not leaking, leaking
            assert b"admin:***@" in cmdlines[proc.pid] and b"password=***" in cmdlines[proc.pid], cmdlines[proc.pid]
            assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == Path(sys.executable).name[:15]
    finally:
        camera.stop()
    output = err_path.read_text()
    assert proc.returncode == 0, output
    assert SECRET not in output and SECRET not in events.read_text(), output
    assert all(json.loads(line)["source"] == "door" for line in events.read_text().splitlines())
