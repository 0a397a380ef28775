"""Parity proof: dlib's own compute_face_descriptor vs our ONNX model under ONNX Runtime.

Chips come from dlib's own pipeline (HOG detector, 5-point shape predictor, get_face_chip), so
the comparison is of the networks alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.models.dlib_resnet import package_weights
from stream.models.manifest import sha256_file
from tests.conftest import media_path

dlib = pytest.importorskip("dlib", reason="dlib (pip install dlib-bin, in the test extra) is the reference")
pytestmark = pytest.mark.slow  # dlib's own pipeline computes the reference for every photo

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]


@pytest.fixture(scope="module")
def chips_and_reference():
    models = package_weights().parent
    detector = dlib.get_frontal_face_detector()
    shape5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(package_weights()))
    chips, refs = [], []
    for name in PHOTOS:
        image = dlib.load_rgb_image(str(media_path(name)))
        for rect in detector(image, 1):
            chip = dlib.get_face_chip(image, shape5(image, rect), size=150, padding=0.25)
            chips.append(chip)
            refs.append(np.array(net.compute_face_descriptor(chip)))
    assert len(chips) == 7, "6 photos, 7 faces"
    return np.stack(chips), np.stack(refs)


def test_onnx_matches_dlib_per_component(default_model, chips_and_reference):
    chips_rgb, reference = chips_and_reference
    with OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path, max_batch=32) as engine:
        ours = engine.embed(chips_rgb[..., ::-1])  # the engine takes BGR, like every OpenCV frame
    diff = np.abs(ours - reference).max()
    assert diff <= 1e-4, f"max abs difference {diff:.2e}"


def test_dynamic_batch_axis_gives_the_same_rows(default_model, chips_and_reference):
    chips_bgr = chips_and_reference[0][..., ::-1]
    with OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path, max_batch=32) as engine:
        batched = engine.embed(chips_bgr)
        one_by_one = np.concatenate([engine.embed(chips_bgr[i : i + 1]) for i in range(len(chips_bgr))])
    with OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path, max_batch=3) as engine:
        split = engine.embed(chips_bgr)  # 7 faces through a max batch of 3: split in the engine
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(batched, split, atol=1e-5)


def test_installed_model_matches_its_manifest(default_model):
    manifest = default_model.manifest
    assert sha256_file(default_model.onnx_path) == manifest.sha256
    assert manifest.source_sha256 == sha256_file(package_weights())
    assert (manifest.embedding_size, manifest.metric, manifest.output_normalized) == (128, "euclidean", False)
    assert (manifest.input.width, manifest.input.height, manifest.input.channel_order) == (150, 150, "RGB")
