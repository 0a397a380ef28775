"""`facestream serve`: the gallery page alone, as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, media_path
from tests.support.net import free_port
from tests.web.run_view import get_json, wait_for


def test_serve_shows_the_gallery_and_stops_on_ctrl_c(cli, engines_dir, tmp_path):
    gallery = tmp_path / "people.npz"
    cli("enroll", "--gallery", gallery, "--name", "alex-lacamoire", media_path("alex-lacamoire.png"), check=True)
    port = free_port()
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--gallery", str(gallery), "--http", str(port)],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        people = wait_for(lambda: get_json(port, "/api/gallery"), 60, "the gallery page", proc)
        assert [p["name"] for p in people] == ["alex-lacamoire"]
        status = get_json(port, "/api/status")
        assert status["cameras"] == [] and status["can_enroll_photos"] and status["gallery"] == "people.npz"
    finally:
        proc.send_signal(signal.SIGINT)
        stderr = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "Traceback" not in stderr
    assert f"gallery page on http://127.0.0.1:{port}/" in stderr


def test_serve_beyond_loopback_without_a_token_is_refused(cli, tmp_path):
    proc = cli("serve", "--gallery", tmp_path / "g.npz", "--http", f"0.0.0.0:{free_port()}", timeout=60)
    assert proc.returncode == 2 and "needs web.token" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_bound_to_all_interfaces_the_address_is_said_once_and_truly(engines_dir, tmp_path):
    config = tmp_path / "web.yaml"
    config.write_text("web:\n  token: ${FACESTREAM_TEST_WEB_TOKEN}\n")
    port = free_port()
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir),
           "FACESTREAM_TEST_WEB_TOKEN": "0d5c8e1f2a3b4c5d6e7f8091a2b3c4d5"}
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--gallery", str(tmp_path / "g.npz"),
                             "--config", str(config), "--http", f"0.0.0.0:{port}"],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    said = []
    try:
        wait_for(lambda: b"ok" in _healthz(port), 60, "the gallery page", proc)
        said.append(proc.stderr.readline())  # the line comes just after the server answers
    finally:
        proc.send_signal(signal.SIGINT)
        stderr = "".join(said) + proc.communicate(timeout=30)[1]
    lines = [line for line in stderr.splitlines() if str(port) in line]
    assert lines == [f"facestream: gallery page on all interfaces, port {port} "
                     f"(http://<an address of this machine>:{port}/) (Ctrl-C to stop)"], stderr


def _healthz(port: int) -> bytes:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        return conn.getresponse().read()
    except OSError:
        return b""
