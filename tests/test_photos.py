"""The one photo path (stream.photos): real photos, the real detector and the default model on ONNX Runtime."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.images import read_image
from stream.photos import (
    PhotoEmbedder,
    calibration,
    detect_crops,
    detect_photos,
    embed_crops,
    load_chosen_crops,
    load_face_crops,
    one_face,
    photo_detector,
)
from tests.conftest import media_path


@pytest.fixture(scope="module")
def embedder(default_model):
    with PhotoEmbedder(default_model) as photos:
        yield photos


@pytest.fixture
def blank(tmp_path):
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8))
    return path


def test_every_face_of_a_photo_is_aligned_and_embedded(embedder, default_model):
    faces = embedder.faces(read_image(media_path("two_people.jpg")))
    spec = default_model.manifest.input
    assert len(faces) == 2 and faces.crops.shape == (2, spec.height, spec.width, 3)
    embeddings = embedder.embed(faces)
    assert embeddings.shape == (2, default_model.manifest.embedding_size)
    names, _ = _gallery_of(default_model, embeddings).match(embeddings)
    assert names == ["a", "b"]  # two different people, each nearest itself


def test_a_photo_without_faces_embeds_to_nothing(embedder, default_model, blank):
    faces = embedder.faces(read_image(blank))
    assert len(faces) == 0
    assert embedder.embed(faces).shape == (0, default_model.manifest.embedding_size)


def test_one_face_says_why_a_photo_is_not_one_person(embedder, blank):
    assert one_face(embedder.faces(read_image(media_path("obama.jpg")))) is None
    assert one_face(embedder.faces(read_image(media_path("two_people.jpg")))) == "2 faces found"
    assert one_face(embedder.faces(read_image(blank))) == "no face found"


def test_the_same_person_in_two_photos_is_nearer_than_another(embedder, default_model):
    def embed(name: str) -> np.ndarray:
        return embedder.embed(embedder.faces(read_image(media_path(name))))[0]

    obama, obama2, biden = embed("obama.jpg"), embed("obama2.jpg"), embed("biden.jpg")
    assert np.linalg.norm(obama - obama2) < np.linalg.norm(obama - biden)


def test_a_dataset_gives_one_crop_per_photo_and_the_photos_without_a_face(default_model, blank):
    photos = [media_path("obama.jpg"), blank, media_path("two_people.jpg"), media_path("obama.jpg")]
    crops, missing = detect_crops(photos, default_model.manifest, "largest")
    assert list(crops) == [media_path("obama.jpg"), media_path("two_people.jpg")]  # each photo once, in order
    assert missing == [blank]
    embeddings = embed_crops(crops, default_model, batch=1)
    with PhotoEmbedder(default_model) as photos_path:
        alone = photos_path.embed(photos_path.faces(read_image(media_path("obama.jpg"))))
    assert np.allclose(embeddings[media_path("obama.jpg")], alone[0], atol=1e-4)


def test_chosen_crops_take_the_largest_face_and_all_crops_take_every_face(default_model):
    two = media_path("two_people.jpg")
    chosen, missing = load_chosen_crops([two], default_model.manifest.alignment, "largest")
    every = load_face_crops([two], default_model.manifest)
    assert len(chosen) == 1 and not missing and len(every) == 2
    assert any(np.array_equal(chosen[0], crop) for crop in every)


def test_a_detector_given_stays_open_for_the_caller(default_model):
    with photo_detector() as detector:
        found = list(detect_photos([media_path("obama.jpg")], detector))
        assert len(found[0][2]) == 1
        assert len(detector.detect(read_image(media_path("biden.jpg")))) == 1  # still usable


def test_an_undecodable_photo_is_a_one_line_error(tmp_path, default_model):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(FacestreamError, match="bad.jpg: not an image"):
        load_face_crops([bad], default_model.manifest)


def test_calibration_reads_its_folder_only_when_asked(tmp_path, default_model):
    missing = calibration(tmp_path / "nowhere")  # nothing is read yet
    with pytest.raises(FacestreamError, match="not a directory"):
        missing(default_model.manifest)
    with pytest.raises(FacestreamError, match="no images"):
        calibration(tmp_path)(default_model.manifest)
    shutil.copy(media_path("two_people.jpg"), tmp_path / "two.jpg")
    crops = calibration(tmp_path, limit=1)(default_model.manifest)
    spec = default_model.manifest.input
    assert crops.shape == (1, spec.height, spec.width, 3) and crops.dtype == np.uint8


def _gallery_of(model, embeddings: np.ndarray):
    from stream.recognize.gallery import Gallery

    gallery = Gallery.new(model.manifest)
    for name, embedding in zip("ab", embeddings):
        gallery.add(name, embedding[None, :])
    return gallery
