from __future__ import annotations

import time
from pathlib import Path

import pytest

from stream.errors import FacestreamError
from stream.sources.open import open_source
from stream.sources.spec import parse_source
from tests.conftest import media_path


def read_all(source, limit=None):
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
        if limit and len(frames) >= limit:
            break
    return frames


def test_reads_every_frame_in_order():
    source = open_source(parse_source(str(media_path("short_hamilton_clip.mp4")), 0))
    source.open()
    frames = read_all(source)
    source.close()
    assert len(frames) == 275
    assert [f.index for f in frames] == list(range(275))
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[-1] == pytest.approx(274 / 29.97, abs=0.05)
    assert frames[0].image.shape == (360, 640, 3) and frames[0].source == "short_hamilton_clip"


@pytest.mark.slow
def test_realtime_paces_at_the_files_rate():
    source = open_source(parse_source(str(media_path("short_hamilton_clip.mp4")), 0), realtime=True)
    source.open()
    t0 = time.monotonic()
    read_all(source, limit=31)
    elapsed = time.monotonic() - t0
    source.close()
    assert elapsed >= 0.9, f"31 frames at 29.97 fps take 1 s; took {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.mp4", "not found"),
        (lambda d: d, "not a file"),
        (lambda d: _write(d / "empty.mp4", b""), "not a video"),
        (lambda d: _write(d / "junk.mp4", bytes(range(256)) * 64), "not a video"),
        (lambda d: _write(d / "cut.mp4", media_path("short_hamilton_clip.mp4").read_bytes()[:2000]), "not a video"),
    ],
)
def test_bad_files_fail_on_open_with_one_line(tmp_path: Path, make, needle):
    path = make(tmp_path)
    source = open_source(parse_source(f"x={path}", 0))
    with pytest.raises(FacestreamError, match=needle) as info:
        source.open()
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
