"""privacy.unknowns: blur: a pixelated face is no longer a face to the detector, nor a match to the model.

The real detector and the default model on real photos: what a viewer of the page or the annotated
video could run on a blurred frame finds no face, or none within the model's threshold of who it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from stream.annotate import blur_boxes
from stream.config.privacy import PrivacyConfig
from stream.config.schema import load_config
from stream.errors import FacestreamError
from stream.images import read_image
from stream.photos import PhotoEmbedder
from tests.conftest import assert_one_line_error, media_path

PHOTOS = ["lin-manuel-miranda.png", "alex-lacamoire.png", "two_people.jpg", "obama.jpg", "biden.jpg"]


@pytest.fixture(scope="module")
def embedder(default_model):
    with PhotoEmbedder(default_model) as photos:
        yield photos


def recognisable(embedder: PhotoEmbedder, image: np.ndarray, who: np.ndarray) -> list[float]:
    """Distances from ``who`` (the faces before blurring) of every face found in ``image`` now."""
    faces = embedder.faces(image)
    if not len(faces):
        return []
    manifest = embedder.model.manifest
    return [float(d) for d in manifest.distances(embedder.embed(faces), who).min(axis=1)]


@pytest.mark.slow
@pytest.mark.parametrize("name", PHOTOS)
def test_a_blurred_face_is_neither_found_nor_matched(embedder, name):
    image = read_image(media_path(name))
    faces = embedder.faces(image)
    assert len(faces), f"{name}: the test needs a face to blur"
    before = embedder.embed(faces)
    threshold = embedder.model.manifest.threshold
    # the unblurred photo finds its faces again: the check below is not vacuous
    assert max(recognisable(embedder, image.copy(), before)) <= 1e-3
    blurred = blur_boxes(image.copy(), faces.xyxy)
    distances = recognisable(embedder, blurred, before)
    assert all(d > threshold for d in distances), f"{name}: a blurred face still matches: {distances}"


def test_blur_stays_inside_the_frame_and_the_grown_box():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), np.uint8)
    original = image.copy()
    # one box across the right and bottom edges, one degenerate box: neither raises
    blur_boxes(image, np.array([[100, 80, 140, 130], [10, 10, 10, 10]], np.float32))
    assert not np.array_equal(image[80:, 100:], original[80:, 100:])
    grown_left, grown_top = 100 - 12, 80 - 15  # 30% of the 40x50 box
    assert np.array_equal(image[:grown_top], original[:grown_top])
    assert np.array_equal(image[:, :grown_left], original[:, :grown_left])
    # pixelated, not smudged: at most BLUR_CELLS x BLUR_CELLS colours in the grown box
    cells = {tuple(px) for px in image[grown_top:, grown_left:].reshape(-1, 3)}
    assert len(cells) <= 36


def test_privacy_keeps_unknowns_unless_asked():
    assert PrivacyConfig().unknowns == "keep" and not PrivacyConfig().blur
    assert PrivacyConfig(unknowns="blur").blur


def test_a_wrong_privacy_setting_is_one_line_with_its_place(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("privacy:\n  unknowns: hide\n")
    with pytest.raises(FacestreamError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and "line 2" in message and "privacy.unknowns" in message and "'hide'" in message


def test_run_refuses_a_wrong_privacy_setting_before_starting(cli, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("privacy:\n  unknowns: hide\n")
    assert_one_line_error(cli("run", "--config", path, "--validate-config"), "privacy.unknowns", "line 2")
