"""`facestream enroll` (and the other commands that read a gallery) with names and gallery files that
are not usable, and `enroll --remove` deleting what was stored of a person."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from stream.recognize.gallery import Gallery
from tests.conftest import assert_one_line_error, media_path


def _list_header_gallery(path: Path) -> Path:
    with open(path, "wb") as f:
        np.savez(f, header=np.array(json.dumps([1, 2])), embeddings=np.zeros((1, 128), np.float32),
                 names=np.array(["ann"]), sources=np.array([""]))
    return path


def test_enroll_refuses_an_unusable_name_before_any_work(cli, tmp_path):
    gallery = tmp_path / "g.npz"
    for name, why in [("ann\u202egnp", "U+202E"), ("a/b", "path separator"), ("a\tb", "U+0009"),
                      (".x", "starts with '.'")]:
        proc = cli("enroll", "--gallery", gallery, "--name", name, media_path("obama.jpg"), timeout=60)
        assert_one_line_error(proc, "not a usable name", why)
    assert not gallery.exists()


def test_a_person_folder_whose_name_is_not_utf8_is_refused(cli, tmp_path):
    people = tmp_path / "people"
    (people / "joe-biden").mkdir(parents=True)
    shutil.copy(media_path("biden.jpg"), people / "joe-biden" / "1.jpg")
    bad = os.path.join(os.fsencode(people), b"caf\xe9")
    os.mkdir(bad)
    shutil.copy(media_path("obama.jpg"), os.path.join(bad, b"1.jpg"))
    gallery = tmp_path / "g.npz"
    proc = cli("enroll", "--gallery", gallery, people, timeout=120)
    assert_one_line_error(proc, "caf\\xe9", "not valid UTF-8")
    assert not gallery.exists()  # nothing of the run is enrolled: rename the folder and run it again


def test_a_gallery_file_not_as_expected_is_one_line_at_start(cli, tmp_path):
    bad = _list_header_gallery(tmp_path / "bad.npz")
    checks = [
        ("enroll", "--gallery", bad, "--name", "ann", media_path("obama.jpg")),
        ("enroll", "--gallery", bad, "--remove", "ann"),
        ("run", "--gallery", bad, "--source", media_path("short_hamilton_clip.mp4"), "--no-progress"),
        ("serve", "--gallery", bad, "--http", "127.0.0.1:0"),
    ]
    for args in checks:
        assert_one_line_error(cli(*args, timeout=120), str(bad), "header")


def _stored_person(tmp_path: Path) -> tuple[Path, Path]:
    """A gallery with ann (a photo added on the page, a stranger named ann) and ann-marie, and their files."""
    gallery, unknowns = tmp_path / "g.npz", tmp_path / "unknowns"
    photos = tmp_path / "g.npz.photos"
    ann_photo = photos / "ann" / "0123.jpg"
    marie_photo = photos / "ann-marie" / "4567.jpg"
    named = unknowns / ".named" / "ann" / "cam-1"
    legacy = unknowns / ".named" / "ann-cam-2"  # the layout before names got folders of their own
    marie_named = unknowns / ".named" / "ann-marie-cam-3"
    for folder in (named, legacy, marie_named):
        folder.mkdir(parents=True)
        (folder / "crop-0.png").write_bytes(b"png")
        (folder / "track.json").write_text("{}")
    for photo in (ann_photo, marie_photo):
        photo.parent.mkdir(parents=True, exist_ok=True)
        photo.write_bytes(b"jpg")
    (unknowns / "cam-9").mkdir()  # a stranger not named yet: nobody's
    g = Gallery("dlib-resnet-v1", "dlib-resnet-v1", "euclidean", 128)
    g.add("ann", np.full((3, 128), 0.1, np.float32),
          [str(ann_photo), str(named / "crop-0.png"), str(legacy / "crop-0.png")])
    g.add("ann-marie", np.full((2, 128), 0.2, np.float32), [str(marie_photo), str(marie_named / "crop-0.png")])
    g.save(gallery)
    return gallery, unknowns


def _left(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".lock" not in p.name)


def test_remove_deletes_the_persons_photos_and_named_strangers(cli, tmp_path):
    gallery, unknowns = _stored_person(tmp_path)
    proc = cli("enroll", "--gallery", gallery, "--remove", "ann", "--unknowns", unknowns, check=True, timeout=60)
    assert "removed ann (3 embedding(s)); deleted 1 photo(s) and 2 named stranger folder(s)" in proc.stdout, proc.stdout
    assert _left(tmp_path) == ["g.npz", "g.npz.photos/ann-marie/4567.jpg",
                               "unknowns/.named/ann-marie-cam-3/crop-0.png",
                               "unknowns/.named/ann-marie-cam-3/track.json"]
    assert Gallery.load(gallery).identities() == ["ann-marie"]
    assert not (unknowns / ".named" / "ann").exists() and not (tmp_path / "g.npz.photos" / "ann").exists()
    assert (unknowns / "cam-9").is_dir()


def test_remove_finds_the_named_strangers_from_the_gallery_without_unknowns(cli, tmp_path):
    gallery, unknowns = _stored_person(tmp_path)
    proc = cli("enroll", "--gallery", gallery, "--remove", "ann-marie", check=True, timeout=60)
    said = "removed ann-marie (2 embedding(s)); deleted 1 photo(s) and 1 named stranger folder(s)"
    assert said in proc.stdout, proc.stdout
    assert not (unknowns / ".named" / "ann-marie-cam-3").exists()
    assert (unknowns / ".named" / "ann-cam-2").is_dir() and (unknowns / ".named" / "ann" / "cam-1").is_dir()
    assert not (tmp_path / "g.npz.photos" / "ann-marie").exists()


def test_remove_refuses_an_unusable_name(cli, tmp_path):
    gallery, _ = _stored_person(tmp_path)
    assert_one_line_error(cli("enroll", "--gallery", gallery, "--remove", "../ann", timeout=60), "path separator")
    assert Gallery.load(gallery).identities() == ["ann", "ann-marie"]
