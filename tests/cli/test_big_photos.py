"""`enroll` and `embed` of photos far larger than their files: one line for what is over the pixel
budget, a bounded process for a large photo that is within it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_one_line_error, media_path
from tests.support.big_images import flat_png, large_jpeg

pytestmark = pytest.mark.slow

# Runs `facestream ARGS...` in this process, then prints its peak resident memory (kernel's VmHWM).
_PEAK = ("import sys\nfrom stream.cli import main\nrc = main(sys.argv[1:])\n"
         "print('VmHWM', [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0], "
         "file=sys.stderr)\nsys.exit(rc)\n")


def peak_mb(engines_dir: Path, *args: object) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    proc = subprocess.run([sys.executable, "-c", _PEAK, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    kb = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("VmHWM")]
    assert kb, proc.stderr
    return proc, int(kb[0].strip("[]'")) / 1024


@pytest.fixture(scope="module")
def big_png(tmp_path_factory) -> Path:
    return flat_png(tmp_path_factory.mktemp("big") / "big.png", 30000, 30000)


def test_enroll_of_a_900_megapixel_png_is_one_line_and_the_gallery_is_unchanged(cli, tmp_path, big_png):
    gallery = tmp_path / "g.npz"
    cli("enroll", "--gallery", gallery, "--name", "lin", media_path("lin-manuel-miranda.png"), check=True)
    before = gallery.read_bytes()
    proc = cli("enroll", "--gallery", gallery, "--name", "alex", media_path("alex-lacamoire.png"), big_png)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "big.png: 30000x30000 pixels (900 MP) is over the 40 MP limit (photos.max_megapixels)")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert gallery.read_bytes() == before


def test_embed_of_a_900_megapixel_png_is_one_line_and_the_other_photos_are_embedded(cli, big_png):
    proc = cli("embed", big_png, media_path("obama.jpg"))
    assert proc.returncode == 1, proc.stderr  # embed: 1 when any image failed
    assert_one_line_error(proc, "big.png: 30000x30000 pixels (900 MP)")
    assert "obama.jpg: 1 face(s)" in proc.stdout


def test_enroll_of_an_8000x8000_jpeg_costs_no_more_memory_than_an_ordinary_photo(engines_dir, default_model,
                                                                                  tmp_path):
    big = large_jpeg(tmp_path / "big.jpg", media_path("obama.jpg"))
    ordinary, ordinary_mb = peak_mb(engines_dir, "enroll", "--gallery", tmp_path / "a.npz", "--name", "obama",
                                    media_path("obama.jpg"))
    large, large_mb = peak_mb(engines_dir, "enroll", "--gallery", tmp_path / "b.npz", "--name", "obama", big)
    print(f"peak RSS of enroll: obama.jpg {ordinary_mb:.0f} MB, 8000x8000 JPEG {large_mb:.0f} MB")
    assert ordinary.returncode == 0 and large.returncode == 0, (ordinary.stderr, large.stderr)
    assert "enrolled 1 image(s)" in large.stdout
    assert large_mb <= ordinary_mb + 300, (ordinary_mb, large_mb)
