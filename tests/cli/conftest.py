"""Run the real `facestream` CLI as a subprocess, against the session's model store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="session")
def cli(engines_dir: Path, default_model):
    """cli(*args, timeout=...) -> CompletedProcess; the default model is built before the first call."""

    def run(*args: str, timeout: float = 300, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.run([sys.executable, "-m", "stream", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=REPO, **kwargs)
        if check and proc.returncode != 0:
            raise AssertionError(f"facestream {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stderr}")
        return proc

    return run


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, no traceback, and a `facestream: ...` line naming the problem."""
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: ")]
    assert lines, proc.stderr
    assert any(all(n in ln for n in needles) for ln in lines), (needles, proc.stderr)
