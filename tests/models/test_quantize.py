"""FP16 and INT8 variants of the default model: installed as their own models, close to FP32."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError, ModelError
from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.models.quantize import quantize
from stream.models.store import DEFAULT_MODEL, ModelStore
from stream.photos import calibration, load_face_crops
from stream.recognize.gallery import Gallery
from tests.conftest import media_path

pytestmark = pytest.mark.slow
PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, default_model) -> ModelStore:
    root = tmp_path_factory.mktemp("qstore")
    shutil.copytree(default_model.onnx_path.parent, root / "models" / DEFAULT_MODEL)
    return ModelStore(root)


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    """Calibration footage: the clip (a temp copy outside the repo); the photos stay held out."""
    path = tmp_path_factory.mktemp("calib")
    shutil.copy(media_path("short_hamilton_clip.mp4"), path / "clip.mp4")
    return path


@pytest.fixture(scope="module")
def photo_crops(default_model) -> np.ndarray:
    return load_face_crops([media_path(p) for p in PHOTOS], default_model.manifest)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def embed(model, crops):
    with OnnxRuntimeEngine(model.manifest, model.onnx_path) as engine:
        return engine.embed(crops)


@pytest.mark.parametrize(("precision", "target", "name", "min_cos"), [
    ("fp16", "cpu", "dlib-resnet-v1-fp16", 0.999),
    ("int8", "cpu", "dlib-resnet-v1-int8", 0.99),
    ("int8", "tensorrt", "dlib-resnet-v1-int8-trt", 0.98),
])
def test_variant_agrees_with_fp32_on_held_out_photos(store, calib, photo_crops, precision, target, name, min_cos):
    faces = calibration(calib) if precision == "int8" else None
    variant = quantize(DEFAULT_MODEL, precision, faces, store=store, target=target)
    base = store.get(DEFAULT_MODEL)
    m = variant.manifest
    assert (m.name, m.precision, m.base_model, m.embedding_space) == (name, precision, DEFAULT_MODEL, DEFAULT_MODEL)
    assert m.sha256 != base.manifest.sha256 and name in store.installed_names()
    assert cosines(embed(variant, photo_crops), embed(base, photo_crops)).min() >= min_cos


def test_int8_keeps_identity_decisions(store, calib, photo_crops):
    base = store.get(DEFAULT_MODEL)
    int8 = store.get("dlib-resnet-v1-int8") if "dlib-resnet-v1-int8" in store.installed_names() else \
        quantize(DEFAULT_MODEL, "int8", calibration(calib), store=store)
    gallery = Gallery.new(base.manifest)  # built with FP32 ...
    gallery.add("obama", embed(base, photo_crops[:1]))
    gallery.add("biden", embed(base, photo_crops[2:3]))
    names_fp32, _ = gallery.match(embed(base, photo_crops))
    names_int8, _ = gallery.match(embed(int8, photo_crops))  # ... matched with INT8 embeddings
    assert names_int8 == names_fp32


def test_int8_needs_calibration_photos(store):
    with pytest.raises(FacestreamError, match="pass --calib DIR"):
        quantize(DEFAULT_MODEL, "int8", None, store=store)


def test_calibration_folder_without_faces(store, tmp_path):
    (tmp_path / "blank.png").write_bytes(media_path("obama.jpg").read_bytes()[:10])
    with pytest.raises(FacestreamError):
        quantize(DEFAULT_MODEL, "int8", calibration(tmp_path), store=store)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FacestreamError, match="no images"):
        quantize(DEFAULT_MODEL, "int8", calibration(empty), store=store)


def test_only_fp32_models_are_quantized(store):
    if "dlib-resnet-v1-fp16" not in store.installed_names():
        quantize(DEFAULT_MODEL, "fp16", store=store)
    with pytest.raises(ModelError, match="already fp16"):
        quantize("dlib-resnet-v1-fp16", "int8", None, store=store)
