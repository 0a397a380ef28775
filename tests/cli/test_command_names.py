"""One word, one meaning: `cluster` groups faces, `site` runs on Ray; the old Ray names say the new ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, assert_one_line_error

pytestmark = pytest.mark.slow  # each test starts the command


def _facestream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("old", "new"), [("run", "site run"), ("batch", "site batch")])
def test_the_old_ray_commands_say_their_new_name_in_one_line_and_exit_2(tmp_path, old, new):
    proc = _facestream("--log-level", "INFO", "cluster", old, "--address", "127.0.0.1:1", "--config",
                       str(tmp_path / "site.yaml"))
    assert proc.returncode == 2
    assert_one_line_error(proc, f"cluster {old}", f"renamed: use `facestream {new}`")
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_help_gives_each_word_one_meaning():
    cluster = _facestream("cluster", "--help")
    site = _facestream("site", "--help")
    assert cluster.returncode == 0 and site.returncode == 0
    assert "{faces}" in cluster.stdout and "Ray" not in cluster.stdout
    assert "{run,batch}" in site.stdout and "facestream[site]" in " ".join(site.stdout.split())
