"""A real `facestream run --http` on the looped Hamilton clip, for the web view's end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO
from tests.support.net import free_port

LOOPS = 2  # the second pass shows the same people again: a stranger named during the first is named then


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}:\n{proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def get_json(port: int, path: str, method: str = "GET", body: dict | None = None):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"content-type": "application/json"})
        response = conn.getresponse()
        data = json.loads(response.read())
        conn.close()
        return data
    except (OSError, ValueError):
        return None


@contextmanager
def running_view(clip: Path, gallery: Path, out: Path, engines_dir: Path, *extra: str) -> Iterator[tuple]:
    port = free_port()
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "run", "--source", f"stage={clip}", "--gallery", str(gallery), "--realtime",
         "--http", f"127.0.0.1:{port}", "--events-out", str(out / "events.jsonl"),
         "--summary-json", str(out / "summary.json"), "--no-progress", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: get_json(port, "/api/status"), 120, "the web view", proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
