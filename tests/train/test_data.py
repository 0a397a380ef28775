"""Training data: identity folders detected once and cached, tracks with proven negatives, P x K batches."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.models.manifest import AlignmentTemplate
from stream.train import data as data_mod
from stream.train.backbones import spec_for
from stream.train.data import FaceSet, PKSampler, augment, holdout_split, load_identity_faces
from stream.train.track_dataset import load_track_faces
from tests.conftest import media_path
from tests.train.synthetic import identity_crops, write_tracks

SPEC = spec_for("mobilefacenet")
TEMPLATE = AlignmentTemplate(width=SPEC.size, height=SPEC.size, points=SPEC.template)


@pytest.mark.slow
def test_identity_folders_are_detected_once_then_read_from_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "people"
    for person, files in {"obama": ["obama.jpg", "obama2.jpg"], "biden": ["biden.jpg"],
                          "lin": ["lin-manuel-miranda.png"], "alex": ["alex-lacamoire.png"]}.items():
        (root / person).mkdir(parents=True)
        for name in files:
            shutil.copy(media_path(name), root / person / name)
    faces = load_identity_faces(root, TEMPLATE, tmp_path / "work", progress=False)
    assert faces.crops.shape == (5, 112, 112, 3) and faces.crops.dtype == np.uint8
    assert list(faces.names) == ["alex", "biden", "lin", "obama"]
    assert sorted(faces.labels.tolist()) == [0, 1, 2, 3, 3]
    caches = list((tmp_path / "work").glob("crops-*.npz"))
    assert len(caches) == 1
    with np.load(caches[0], allow_pickle=False) as cached:  # plain arrays, no pickle
        assert cached["crops"].shape == faces.crops.shape

    def boom(*args, **kwargs):
        raise AssertionError("detected again despite the cache")

    monkeypatch.setattr(data_mod, "detect_and_align", boom)
    again = load_identity_faces(root, TEMPLATE, tmp_path / "work", progress=False)
    np.testing.assert_array_equal(again.crops, faces.crops)


def test_a_dataset_with_one_person_is_refused_naming_it(tmp_path):
    (tmp_path / "only").mkdir()
    shutil.copy(media_path("biden.jpg"), tmp_path / "only" / "a.jpg")
    with pytest.raises(FacestreamError, match=str(tmp_path)):
        load_identity_faces(tmp_path, TEMPLATE, tmp_path / "w")


def test_tracks_give_positives_within_a_track_and_negatives_only_when_seen_together(tmp_path):
    root = write_tracks(tmp_path / "tracks", identities=3, per_identity=4)
    (root / "cam-3" / "track.json").write_text(json.dumps({"frames": [500, 501]}))  # never with the others
    (root / "other-1").mkdir()
    for i, crop in enumerate(identity_crops(1, 2, size=150, seed=9)[0]):  # another model's crop size
        cv2.imwrite(str(root / "other-1" / f"{i}.png"), crop)
    (root / "other-1" / "track.json").write_text(json.dumps({"frames": [100]}))  # same frame, other source
    shutil.copytree(root / "cam-2", root / "cam-9")  # frame 100 too, but of another run of that camera
    (root / "cam-9" / "track.json").write_text(json.dumps({"frames": [100], "run": "later"}))
    shutil.copytree(root / "cam-2", root / ".tmp-cam-7")  # half-written by `run --save-unknowns`: skipped
    faces = load_track_faces(root, TEMPLATE)
    assert ".tmp-cam-7" not in list(faces.names)
    assert faces.crops.shape[1:] == (112, 112, 3)
    names = list(faces.names)
    lab = {n: np.flatnonzero(faces.labels == names.index(n)) for n in names}
    neg = faces.negatives
    assert neg[np.ix_(lab["cam-1"], lab["cam-2"])].all()
    assert not neg[np.ix_(lab["cam-1"], lab["cam-3"])].any()
    assert not neg[np.ix_(lab["cam-1"], lab["other-1"])].any()
    assert not neg[np.ix_(lab["cam-1"], lab["cam-9"])].any()
    assert not neg[np.ix_(lab["cam-1"], lab["cam-1"])].any()


def test_tracks_without_a_track_json_are_refused_naming_the_file(tmp_path):
    root = write_tracks(tmp_path / "tracks", identities=2, per_identity=2)
    (root / "cam-2" / "track.json").unlink()
    with pytest.raises(FacestreamError, match="cam-2/track.json: missing"):
        load_track_faces(root, TEMPLATE)


def test_pk_batches_have_p_identities_of_k_faces_and_are_seeded():
    _, labels = identity_crops(6, 5, size=8)
    sampler = PKSampler(labels, p=3, k=4, seed=1)
    batches = list(sampler.epoch(0))
    assert len(batches) == len(sampler) == 3  # ceil(30 / 12)
    for batch in batches:
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(ids) == 3 and (counts == 4).all()
    assert all((a == b).all() for a, b in zip(batches, PKSampler(labels, 3, 4, seed=1).epoch(0), strict=True))
    assert any((a != b).any() for a, b in zip(batches, sampler.epoch(1), strict=True))


def test_pk_batches_from_tracks_include_a_proven_negative():
    labels = np.repeat(np.arange(6), 3)
    different = np.zeros((6, 6), bool)
    different[0, 5] = different[5, 0] = True  # only tracks 0 and 5 were ever seen together
    negatives = different[labels[:, None], labels[None, :]]
    for batch in PKSampler(labels, p=2, k=2, seed=0, negatives=negatives).epoch(0):
        assert set(labels[batch].tolist()) == {0, 5}


def test_holdout_keeps_every_identity_in_training():
    crops, labels = identity_crops(3, 5, size=8)
    train, held = holdout_split(FaceSet(crops, labels, np.array(["a", "b", "c"])), 0.4, seed=0)
    assert len(held) == 6 and len(np.intersect1d(train, held)) == 0
    assert set(labels[train].tolist()) == {0, 1, 2}


def test_augment_keeps_shape_and_changes_pixels():
    crops, _ = identity_crops(2, 2)
    out = augment(crops, np.random.default_rng(0))
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - crops).mean() > 1
