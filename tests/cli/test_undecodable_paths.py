"""A file name that is not valid UTF-8 (any bytes are a valid Linux name) never reaches OpenCV, whose
Python binding segfaults on it: one line and exit 2, or it works where OpenCV is not involved."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, media_path


def undecodable(folder: Path, suffix: str) -> Path:
    """A path in ``folder`` whose name is the byte 0xff, as Python sees it (a surrogate escape)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/\xff" + suffix.encode()))


def test_a_video_named_in_invalid_utf8_is_refused_in_one_line(cli, tmp_path):
    video = undecodable(tmp_path, ".mp4")
    shutil.copy(media_path("short_hamilton_clip.mp4"), video)
    proc = cli("run", "--source", video, "--no-progress", timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # was 139 (SIGSEGV) with no output
    assert_one_line_error(proc, "\\xff.mp4", "not valid UTF-8")


def test_an_annotated_video_named_in_invalid_utf8_is_refused_before_the_run(cli, tmp_path):
    out = undecodable(tmp_path, ".mp4")
    proc = cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--annotate", out, "--no-progress",
               timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert_one_line_error(proc, "\\xff.mp4", "not valid UTF-8")
    assert not any(tmp_path.iterdir())


def test_a_photo_named_in_invalid_utf8_is_read_without_opencv_touching_the_name(cli, tmp_path):
    photo = undecodable(tmp_path, ".png")
    shutil.copy(media_path("lin-manuel-miranda.png"), photo)
    gallery = tmp_path / "g.npz"
    proc = cli("enroll", "--gallery", gallery, "--name", "lin", photo, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "enrolled 1 image(s)" in proc.stdout


@pytest.mark.parametrize("text", ["cam=rtsp://127.0.0.1:1/\udcff", "http://127.0.0.1:1/\udcff.mp4"])
def test_a_stream_url_in_invalid_utf8_is_refused(cli, text):
    proc = cli("run", "--source", text, "--no-progress", timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert_one_line_error(proc, "\\xff", "not valid UTF-8")
