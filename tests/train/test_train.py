"""Training lowers the loss, the exported ONNX matches PyTorch, and the new model runs through `run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.models.preprocess import to_input_tensor
from stream.models.store import ModelStore
from stream.train import backbones
from stream.train.loop import CHECKPOINT, TrainConfig, _input_spec, train
from stream.train.mining import triplet_loss
from tests.conftest import REPO, media_path
from tests.train.synthetic import fit_head, identity_crops, write_tracks

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("mode", ["semi-hard", "hard", "batch-all"])
def test_a_few_steps_on_a_tiny_batch_lower_the_loss(mode):
    torch.manual_seed(0)
    model = backbones.build("mobilefacenet")
    spec = _input_spec(backbones.spec_for("mobilefacenet"))
    crops, labels = identity_crops(3, 4, seed=1)
    x = torch.from_numpy(to_input_tensor(crops, spec))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # alpha 1.0 keeps every mode's loss positive at the start, so there is something to lower.
    losses = []
    for _ in range(6):
        result = triplet_loss(model(x), labels, mode, alpha=1.0)
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        losses.append(float(result.loss.detach()))
    assert losses[-1] < losses[0], losses


def test_the_angular_margin_head_lowers_its_loss():
    from stream.train.angular import cosine_margin_head

    torch.manual_seed(0)
    model = backbones.build("mobilefacenet")
    head = cosine_margin_head(128, classes=3)
    spec = _input_spec(backbones.spec_for("mobilefacenet"))
    crops, labels = identity_crops(3, 4, seed=2)
    x, y = torch.from_numpy(to_input_tensor(crops, spec)), torch.from_numpy(labels)
    losses, _ = fit_head([model], head, x, y, steps=5, lr=1e-3)
    assert losses[-1] < losses[0], losses


def test_training_from_tracks_resumes_exports_and_installs(tmp_path):
    store = ModelStore(tmp_path / "engines")
    tracks = write_tracks(tmp_path / "tracks", identities=3, per_identity=10)  # 2 held out each
    cfg = TrainConfig(name="tiny-mfn", from_tracks=tracks, p=3, k=2, epochs=1, max_batches=2, progress=False)
    first = train(cfg, store)
    assert [h.epoch for h in first.history] == [1]
    ckpt = store.root / "training" / "tiny-mfn" / CHECKPOINT
    assert set(torch.load(ckpt, weights_only=True)) >= {"model", "optimizer", "epoch", "history"}
    cfg.epochs, cfg.resume = 2, True
    second = train(cfg, store)
    assert [h.epoch for h in second.history] == [1, 2]  # epoch 1 was not redone
    assert second.history[0] == first.history[0]
    assert second.onnx_diff <= 1e-4
    installed = store.get("tiny-mfn")
    manifest = installed.manifest
    assert (manifest.input.width, manifest.embedding_size, manifest.metric) == (112, 128, "euclidean")
    assert manifest.threshold == pytest.approx(max(second.history[-1].threshold, 1e-4), abs=1e-4)
    with pytest.raises(FacestreamError, match="tiny-mfn: already installed"):
        train(TrainConfig(name="tiny-mfn", from_tracks=tracks, progress=False), store)


def test_exported_onnx_matches_pytorch_within_1e_4_on_face_crops(tmp_path):
    import onnxruntime as ort

    from stream.models.torch_export import export_onnx

    torch.manual_seed(0)
    model = backbones.build("mobilefacenet")
    spec = _input_spec(backbones.spec_for("mobilefacenet"))
    crops, _ = identity_crops(2, 3, seed=3)
    x = torch.from_numpy(to_input_tensor(crops, spec))
    for _ in range(2):  # move the BatchNorm running statistics off their initial values
        model(x)
    export_onnx(model, 112, tmp_path / "m.onnx")
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 6):  # the batch axis is dynamic
        (out,) = session.run(["embedding"], {"input": x.numpy()[:batch]})
        assert np.abs(out - ref[:batch]).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_a_trained_model_runs_end_to_end_through_run(tmp_path):
    clip = media_path("short_hamilton_clip.mp4")
    engines = tmp_path / "engines"
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines), "PYTHONUNBUFFERED": "1"}

    def cli(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "stream", *map(str, args)], capture_output=True, text=True,
                              timeout=300, env=env, cwd=REPO)

    tracks = write_tracks(tmp_path / "tracks", identities=3, per_identity=4)
    proc = cli("train", "--from-tracks", tracks, "--out", "e2e-mfn", "--p", "3", "--k", "2", "--epochs", "1",
               "--max-batches", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "installed e2e-mfn" in proc.stdout
    proc = cli("run", "--source", clip, "--model", "e2e-mfn", "--summary-json", tmp_path / "s.json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 275 and summary["faces"] > 0


def test_bad_input_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stream", "train", str(tmp_path / "nope"), "--out", "x"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "FACESTREAM_ENGINES_DIR": str(tmp_path / "e")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"facestream: {tmp_path / 'nope'}: not found" in proc.stderr
