"""A test's ``facestream`` processes: a live run started, waited on and stopped as a user would, and every
process whose environment holds a marker the test set."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.conftest import REPO


def processes_with(marker: str) -> dict[int, str]:
    """pid -> process name (/proc/<pid>/comm) of every process whose environment holds ``marker``."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                out[int(entry.name)] = (entry / "comm").read_text().strip()
        except OSError:
            continue  # gone, or another user's
    return out


@contextlib.contextmanager
def facestream_run(args: list[str], env: dict, log: Path) -> Iterator[subprocess.Popen]:
    """``facestream ARGS`` running for the block (stdout and stderr into ``log``), then stopped as a user
    stops it (SIGINT; killed if it has not ended 60 s later, or when the block failed)."""
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stream", *map(str, args)], cwd=REPO, env=env, stdout=out,
                                stderr=out)
    try:
        yield proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(proc: subprocess.Popen, log: Path, what: str, timeout_s: float, found: Callable[[], object],
             poll_s: float = 0.25) -> None:
    """Poll ``found()`` until it holds; fails, with the run's output, if the run ends first or ``timeout_s``
    passes."""
    deadline = time.monotonic() + timeout_s
    while not found():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s\n" + log.read_text()
        time.sleep(poll_s)


def run_until(args: list[str], done: Callable[[], object], timeout_s: float, what: str, env: dict, log: Path) -> str:
    """``facestream ARGS`` (a live run) until ``done()`` holds, then stopped with SIGINT; its output. Fails,
    with the output, if it ends first, is not done in ``timeout_s``, exits non-zero or prints a traceback."""
    with facestream_run(args, env, log) as proc:
        wait_for(proc, log, what, timeout_s, done)
    output = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in output, output
    return output
