"""The web view's gallery operations with names that are not usable, a gallery file that is not one,
and a removal that deletes what was stored of the person (real uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from stream.recognize.gallery import Gallery
from tests.conftest import media_path
from tests.web.conftest import CAMERA, make_view


def _upload(filename: str) -> dict[str, str]:
    """The headers the page sends with a photo."""
    return {"x-filename": filename, "content-type": "image/jpeg", "x-facestream-request": "1"}


@pytest.fixture
def enroller(tmp_path, default_model):
    from stream.web.people import PhotoEnroller

    enroller = PhotoEnroller(default_model.name, tmp_path / "people.npz")
    yield enroller
    enroller.close()


@pytest.mark.parametrize(("name", "why"), [("a\x00b", "U+0000"), ("ann\u202egnp", "U+202E"),
                                           ("a\u200bb", "U+200B"), ("x" * 101, "characters")])
def test_an_unusable_name_is_refused_before_the_photo_is_looked_at(tmp_path, enroller, name, why):
    for view in make_view(tmp_path, gallery=enroller.gallery_path, enroller=enroller):
        status, body, _ = view.get(f"/api/gallery/{quote(name)}/photos", method="POST",
                                   body=media_path("obama.jpg").read_bytes(), headers=_upload("o.jpg"))
        assert status == 400, body
        error = json.loads(body)["error"]
        assert "not a usable name" in error and why in error and "\x00" not in error
        assert enroller._photos is None  # no model was loaded, no detection ran
    assert not enroller.gallery_path.exists()
    assert not enroller.gallery_path.with_name("people.npz.photos").exists()


def test_a_gallery_with_a_name_that_is_not_utf8_is_a_400_not_a_500(tmp_path):
    gallery = tmp_path / "g.npz"
    header = {"schema": 1, "model": "m", "embedding_space": "m", "metric": "euclidean", "dim": 4}
    with open(gallery, "wb") as f:
        np.savez(f, header=np.array(json.dumps(header)), embeddings=np.zeros((1, 4), np.float32),
                 names=np.array([os.fsdecode(b"caf\xe9")]), sources=np.array([""]))
    for view in make_view(tmp_path, gallery=gallery):
        status, body, _ = view.get("/api/gallery")
        assert status == 400 and "not valid UTF-8" in json.loads(body)["error"], body


def _save_stranger(unknowns: Path, manifest, track_id: int) -> None:
    from stream.cluster.saved_tracks import UnknownsRecorder

    recorder = UnknownsRecorder(unknowns, manifest, keep=2)
    rng = np.random.default_rng(track_id)
    emb = rng.normal(size=manifest.embedding_size).astype(np.float32)
    crop = rng.integers(0, 255, (manifest.input.height, manifest.input.width, 3), np.uint8)
    for frame in range(3):
        recorder.observe(CAMERA, track_id, frame, crop, emb, quality=1.0)
    recorder.end(CAMERA, track_id, unknown=True)


@pytest.mark.slow
def test_deleting_a_person_deletes_their_photos_and_named_strangers(tmp_path, enroller, default_model):
    gallery, unknowns = enroller.gallery_path, tmp_path / "unknowns"
    photos = gallery.with_name(gallery.name + ".photos")
    for track_id in (4, 5, 6):
        _save_stranger(unknowns, default_model.manifest, track_id)
    for view in make_view(tmp_path, gallery=gallery, unknowns=unknowns, enroller=enroller):
        for name, photo in [("lin", "lin-manuel-miranda.png"), ("joe", "biden.jpg")]:
            status, body, _ = view.get(f"/api/gallery/{name}/photos", method="POST",
                                       body=media_path(photo).read_bytes(), headers=_upload(photo))
            assert status == 200, body
        for track, name in [(f"{CAMERA}-4", "lin"), (f"{CAMERA}-5", "joe")]:
            status, body, _ = view.get(f"/api/unknowns/{track}/name", method="POST",
                                       body=json.dumps({"name": name}).encode(),
                                       headers={"content-type": "application/json"})
            assert status == 200, body
        assert len(list((photos / "lin").iterdir())) == 1 and len(list((unknowns / ".named").iterdir())) == 2
        status, body, _ = view.get("/api/gallery/lin", method="DELETE")
        assert status == 200, body
        said = "removed lin (2 embedding(s)); deleted 1 photo(s) and 1 named stranger folder(s)"
        assert json.loads(body)["message"] == said
        assert not (photos / "lin").exists() and (photos / "joe").is_dir()
        named = sorted(p.relative_to(unknowns / ".named") for p in (unknowns / ".named").rglob("track.json"))
        assert named == [Path("joe") / f"{CAMERA}-5" / "track.json"]
        assert (unknowns / f"{CAMERA}-6" / "track.json").is_file()  # a stranger nobody named stays
        assert [p["name"] for p in view.json("/api/gallery")] == ["joe"]
        status, body, _ = view.get(f"/api/gallery/{quote('lin/../joe')}", method="DELETE")
        assert status in (400, 404)
        assert Gallery.load(gallery).identities() == ["joe"]
