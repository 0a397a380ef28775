"""Fixtures shared by the pipeline's end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import media_path
from tools.bench_frame_rate import PEOPLE


@pytest.fixture(scope="module")
def gallery(cli, tmp_path_factory) -> Path:
    """The tests/media photos enrolled (PEOPLE): the clip's people and one who is not in it. A module may
    define its own ``gallery`` instead (a smaller one)."""
    path = tmp_path_factory.mktemp("gallery") / "people.npz"
    for name, files in PEOPLE.items():
        cli("enroll", "--gallery", path, "--name", name, *[media_path(f) for f in files], check=True)
    return path
