"""`facestream serve`: the gallery page alone, as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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
