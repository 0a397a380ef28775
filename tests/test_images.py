"""stream.images: every photo's size is read from its header and checked before it is decoded; large
ones are decoded reduced. Real files: tests/media photos, and large ones built in tests/support."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.images import WORK_PX, decode_image, image_size, read_image
from tests.conftest import media_path
from tests.support.big_images import flat_png, large_jpeg


@pytest.fixture(scope="module")
def big_png(tmp_path_factory) -> Path:
    return flat_png(tmp_path_factory.mktemp("big") / "big.png", 30000, 30000)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    return large_jpeg(tmp_path_factory.mktemp("big") / "big.jpg", media_path("obama.jpg"))


@pytest.mark.slow
def test_a_png_declaring_900_megapixels_is_refused_from_its_header(big_png):
    assert big_png.stat().st_size < 1_000_000
    with pytest.raises(FacestreamError) as info:
        read_image(big_png)
    assert str(info.value) == f"{big_png}: 30000x30000 pixels (900 MP) is over the 40 MP limit (photos.max_megapixels)"
    with pytest.raises(FacestreamError, match="upload.png: 30000x30000 pixels"):
        decode_image(big_png.read_bytes(), "upload.png")


@pytest.mark.slow
def test_a_large_baseline_jpeg_is_decoded_reduced_to_the_working_size(big_jpeg):
    header = image_size(big_jpeg)
    assert (header.width, header.height, header.format, header.reduction()) == (8000, 8000, "JPEG", 4)
    image = read_image(big_jpeg)
    assert image.shape == (2000, 2000, 3) and image.dtype == np.uint8
    # the picture, not only its size: the grey canvas at the edge, the photo in the middle
    assert abs(int(image[10, 10].mean()) - 128) <= 3 and image[:, 900:1100].std() > 10


@pytest.mark.slow
def test_a_progressive_jpeg_counts_at_full_size(tmp_path):
    # libjpeg keeps a progressive image's every coefficient in memory, whatever size it outputs
    canvas = np.full((7000, 7000, 3), 90, np.uint8)
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    path = tmp_path / "prog.jpg"
    path.write_bytes(data.tobytes())
    with pytest.raises(FacestreamError, match=r"prog.jpg: 7000x7000 pixels \(49 MP\) is over the 40 MP limit"):
        read_image(path)
    assert read_image(path, max_megapixels=50).shape == (WORK_PX, WORK_PX, 3)


@pytest.mark.slow
def test_a_jpeg_too_large_even_reduced_says_so(tmp_path):
    path = large_jpeg(tmp_path / "huge.jpg", media_path("obama.jpg"), side=8000)
    with pytest.raises(FacestreamError, match=r"8000x8000 pixels \(64 MP; 4.0 MP even decoded at 1/4\) is over the "
                                              r"2 MP limit"):
        read_image(path, max_megapixels=2)


def test_other_formats_are_scaled_down_after_decoding(tmp_path):
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.zeros((1500, 5120, 3), np.uint8))
    assert read_image(path).shape == (750, WORK_PX, 3)


def test_photos_within_the_working_size_are_used_as_they_are():
    for name in ("obama.jpg", "biden.jpg", "lin-manuel-miranda.png"):
        path = media_path(name)
        np.testing.assert_array_equal(read_image(path), cv2.imread(str(path)))


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])
def test_what_is_not_an_image_is_one_line(data):
    with pytest.raises(FacestreamError, match="^x.bin: not an image OpenCV can decode"):
        decode_image(data, "x.bin")


@pytest.mark.slow
def test_fuzzed_headers_give_an_image_or_one_error_line():
    """Random bytes changed in the first 64 bytes of real photos: never another exception, never an
    image over the working size."""
    rng = random.Random(20)
    originals = [media_path(n).read_bytes() for n in ("obama2.jpg", "alex-lacamoire.png")]
    for _ in range(300):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(64)] = rng.randrange(256)
        try:
            image = decode_image(bytes(data), "fuzz")
        except FacestreamError as exc:
            assert str(exc).startswith("fuzz: ") and "\n" not in str(exc)
        else:
            assert image.ndim == 3 and max(image.shape[:2]) <= WORK_PX


@pytest.mark.slow
def test_thumbnails_are_decoded_small_and_a_bomb_has_none(big_jpeg, big_png):
    from stream.web.people import THUMB_PX, _thumbnail

    thumb = cv2.imdecode(np.frombuffer(_thumbnail(big_jpeg), np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == THUMB_PX
    assert _thumbnail(big_png) is None


@pytest.mark.slow
def test_a_folder_of_crops_is_recognised_from_the_headers(tmp_path):
    from stream.cli.enroll_cmd import aligned_crops

    for i in range(2):
        cv2.imwrite(str(tmp_path / f"crop-{i}.png"), np.zeros((150, 150, 3), np.uint8))
    assert aligned_crops(tmp_path, (150, 150)) == sorted(tmp_path.glob("*.png"))
    flat_png(tmp_path / "crop-2.png", 30000, 30000)
    assert aligned_crops(tmp_path, (150, 150)) is None


def test_the_budget_is_a_setting(tmp_path):
    from stream.config.schema import load_config

    path = tmp_path / "c.yaml"
    path.write_text("photos:\n  max_megapixels: 12\n")
    assert load_config(path).photos.max_megapixels == 12
    path.write_text("photos:\n  max_megapixels: 0\n")
    with pytest.raises(FacestreamError, match="line 2 photos.max_megapixels"):
        load_config(path)
