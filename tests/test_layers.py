"""The import layers ([tool.importlinter] in pyproject.toml) cover every package and catch an arrow back up.

CI runs `lint-imports` on the tree itself; these tests make sure that check means something: each
plants one bad import into a copy of the package and sees the contract name it.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stream
from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_every_top_level_module_has_a_layer():
    named = {m.strip() for layer in _contracts()["layers"]["layers"] for m in layer.replace(":", "|").split("|")}
    present = {f"stream.{m.name}" for m in pkgutil.iter_modules(stream.__path__)}
    assert present - named == set(), "give each new module of stream/ its layer in pyproject.toml"
    assert named - present == set(), "a layer names a module that is gone"


def _lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    assert Path(found).is_file(), "import-linter is in the test extra: pip install -e '.[test]'"
    return found


PLANTS = {
    # where, what is added, what the report must say
    "module level": ("faces.py", "import stream.cli  # planted\n",
                     ["stream.faces is not allowed to import stream.cli", "stream.faces -> stream.cli"]),
    "inside a function": ("models/store.py",
                          "\n\ndef _planted():\n    from stream.detect import FaceDetector\n\n"
                          "    return FaceDetector\n",
                          ["stream.models is not allowed to import stream.detect",
                           "stream.models.store -> stream.detect"]),
    "a cycle": ("track/kalman.py", "import stream.track.sort  # planted\n",
                ["No cycles are allowed in stream.track"]),
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_import_breaks_a_contract(tmp_path, plant):
    where, text, said = PLANTS[plant]
    shutil.copytree(REPO / "stream", tmp_path / "stream", ignore=shutil.ignore_patterns("__pycache__", "static"))
    with open(tmp_path / "stream" / where, "a") as f:
        f.write(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copy, not the installed tree
    proc = subprocess.run([_lint_imports(), str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for line in said:
        assert line in proc.stdout, proc.stdout
