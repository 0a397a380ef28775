from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.recognize.gallery import Gallery


@pytest.fixture
def manifest(default_model):
    return default_model.manifest


def rng_embeddings(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32) * 0.1


def test_roundtrip_and_match(tmp_path: Path, manifest):
    g = Gallery.new(manifest)
    ann, bob = rng_embeddings(2, 1), rng_embeddings(1, 2)
    g.add("ann", ann, ["a1.jpg", "a2.jpg"])
    g.add("bob", bob)
    path = tmp_path / "g.npz"
    g.save(path)
    again = Gallery.load(path, manifest)
    assert again.identities() == ["ann", "bob"]
    names, d = again.match(np.concatenate([ann[:1] + 0.001, bob]))
    assert names == ["ann", "bob"]
    assert d[1] == pytest.approx(0, abs=1e-3)


def test_empty_gallery_matches_nothing(manifest):
    names, d = Gallery.new(manifest).match(rng_embeddings(2, 3))
    assert names == [None, None] and np.isinf(d).all()


def test_refuses_another_models_embedding_space(tmp_path: Path, manifest):
    other = manifest.model_copy(update={"name": "facenet-vggface2", "embedding_size": 512})
    g = Gallery.new(other)
    g.add("ann", np.ones((1, 512), np.float32))
    g.save(tmp_path / "g.npz")
    with pytest.raises(FacestreamError, match="built with model 'facenet-vggface2' \\(512-D\\); the current "
                                              "model is 'dlib-resnet-v1' \\(128-D\\)"):
        Gallery.load(tmp_path / "g.npz", manifest)


def test_variant_of_the_same_model_is_compatible(tmp_path: Path, manifest):
    g = Gallery.new(manifest)
    g.add("ann", rng_embeddings(1, 4))
    g.save(tmp_path / "g.npz")
    int8 = manifest.model_copy(update={"name": "dlib-resnet-v1-int8", "base_model": manifest.name, "precision": "int8"})
    assert Gallery.load(tmp_path / "g.npz", int8).identities() == ["ann"]


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_corrupt_files_are_one_line_errors(tmp_path: Path, manifest, content: bytes):
    path = tmp_path / "g.npz"
    path.write_bytes(content)
    with pytest.raises(FacestreamError, match=r"g\.npz: not a facestream gallery"):
        Gallery.load(path, manifest)


def test_pickled_object_arrays_are_never_loaded(tmp_path: Path, manifest):
    path = tmp_path / "g.npz"
    np.savez(path, header=np.array([{"evil": 1}], dtype=object), embeddings=np.zeros((1, 128)))
    with pytest.raises(FacestreamError, match="not a facestream gallery"):
        Gallery.load(path, manifest)


def test_failed_save_leaves_the_old_file(tmp_path: Path, manifest, monkeypatch):
    g = Gallery.new(manifest)
    g.add("ann", rng_embeddings(1, 5))
    path = tmp_path / "g.npz"
    g.save(path)
    before = path.read_bytes()
    g.add("bob", rng_embeddings(1, 6))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        g.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"], "no temp file left behind"


def test_missing_gallery(tmp_path: Path, manifest):
    with pytest.raises(FacestreamError, match="gallery not found"):
        Gallery.load(tmp_path / "nope.npz", manifest)
