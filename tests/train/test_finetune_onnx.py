"""`--backbone onnx:dlib-resnet-v1`: the installed default model converted to torch (stream.train.onnx_module,
no onnx2torch needed), checked against ONNX Runtime on real aligned faces, fine-tuned for two steps,
exported and run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.models.preprocess import to_input_tensor
from stream.models.store import ModelStore
from stream.train import backbones
from stream.train.loop import TrainConfig, train
from tests.conftest import REPO, media_path

pytest.importorskip("torch", reason="PyTorch not installed: pip install -e '.[train]'")

BASE = "dlib-resnet-v1"
PHOTOS = {"obama": ("obama.jpg", "obama2.jpg"), "biden": ("biden.jpg",), "lin": ("lin-manuel-miranda.png",),
          "alex": ("alex-lacamoire.png",)}


@pytest.fixture()
def store(tmp_path: Path, default_model) -> ModelStore:
    """A private store holding a copy of the session's dlib-resnet-v1 (the shared store is never written)."""
    root = tmp_path / "engines"
    shutil.copytree(default_model.onnx_path.parent, root / "models" / BASE)
    return ModelStore(root)


def _real_crops(store: ModelStore) -> dict[str, np.ndarray]:
    from stream.photos import load_face_crops

    manifest = store.get(BASE).manifest
    return {name: load_face_crops([media_path(f) for f in files], manifest) for name, files in PHOTOS.items()}


@pytest.mark.slow  # converts and runs a 5.6 M-parameter network
def test_converted_dlib_resnet_matches_onnx_runtime_on_real_crops(store):
    spec = backbones.spec_for(f"onnx:{BASE}", store)
    crops = np.concatenate(list(_real_crops(store).values()))
    assert len(crops) >= 5
    module = backbones.convert_onnx(spec.onnx_path)
    diff = backbones.check_conversion(module, spec.onnx_path, to_input_tensor(crops, spec.base.input))
    assert diff <= 1e-4


def _write_real_tracks(root: Path, crops: dict[str, np.ndarray]) -> Path:
    """One track per person of real aligned crops (and shifted/flipped copies, so each has 4), all
    seen in frame 100 together, hence proven different."""
    for i, faces in enumerate(crops.values()):
        folder = root / f"media-{i + 1}"
        folder.mkdir(parents=True)
        variants = [f for face in faces for f in (face, cv2.flip(face, 1), np.roll(face, 2, axis=1))]
        for j, crop in enumerate(variants[:4] if len(variants) >= 4 else [*variants, variants[0]]):
            cv2.imwrite(str(folder / f"crop-{j}.png"), crop)
        (folder / "track.json").write_text(json.dumps({"source": "media", "frames": [100, 101 + i]}))
    return root


@pytest.mark.slow  # training steps, then `run` on the clip in a process
def test_two_fine_tuning_steps_export_a_model_that_runs(store, tmp_path):
    tracks = _write_real_tracks(tmp_path / "tracks", _real_crops(store))
    cfg = TrainConfig(name="dlib-ft-test", from_tracks=tracks, backbone=f"onnx:{BASE}", p=3, k=2, epochs=1,
                      max_batches=2, holdout=0.0, progress=False)
    result = train(cfg, store)
    assert [h.epoch for h in result.history] == [0, 1]  # epoch 0: the un-tuned model's figure
    assert result.onnx_diff <= 1e-4
    base, tuned = store.get(BASE).manifest, store.get("dlib-ft-test").manifest
    assert tuned.input == base.input and tuned.alignment == base.alignment
    assert (tuned.output_normalized, tuned.metric, tuned.embedding_size) == (True, "euclidean", 128)

    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(store.root), "PYTHONUNBUFFERED": "1"}
    clip = media_path("short_hamilton_clip.mp4")
    proc = subprocess.run([sys.executable, "-m", "stream", "run", "--source", str(clip), "--model", "dlib-ft-test",
                           "--summary-json", str(tmp_path / "s.json"), "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 275 and summary["faces"] > 0
