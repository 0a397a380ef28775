"""Finding a test run's processes: every process whose environment holds a marker the test set."""

from __future__ import annotations

from pathlib import Path


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


def run_until(args: list[str], done, timeout_s: float, what: str, env: dict, log: Path) -> str:
    """``facestream ARGS`` (a live run) until ``done()`` holds, then stopped as a user stops it (SIGINT);
    its output (``log``) returned. Fails, with the output, if it ends first, is not done in ``timeout_s``,
    exits non-zero or prints a traceback."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stream", *args], cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not {what} in {timeout_s:.0f} s\n" + log.read_text()
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    output = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in output, output
    return output
