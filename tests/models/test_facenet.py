"""FaceNet import on a small randomly initialised checkpoint (PyTorch needed; skipped without it)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.errors import ModelError
from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.models.store import ModelStore
from tests.conftest import REPO, assert_one_line_error
from tests.support.http_files import serve_files

torch = pytest.importorskip("torch", reason="PyTorch is the optional [export] extra; FaceNet import needs it")

from stream.models.facenet import build_inception_resnet_v1, import_facenet  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_inception_resnet_v1()
    with torch.no_grad():  # random BN statistics, so folding them into the graph is tested
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    state = dict(model.state_dict())
    state["logits.weight"] = torch.zeros(10, 512)  # the classifier head of the published files
    state["logits.bias"] = torch.zeros(10)
    path = tmp_path_factory.mktemp("ckpt") / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def imported(checkpoint, tmp_path_factory):
    store = ModelStore(tmp_path_factory.mktemp("store"))
    return import_facenet(checkpoint, "facenet-test", store), store


def test_manifest_of_the_imported_model(imported):
    model, _ = imported
    m = model.manifest
    assert (m.input.width, m.input.height, m.embedding_size, m.output_normalized) == (160, 160, 512, True)
    assert m.input.mean == (127.5, 127.5, 127.5) and m.input.std == (128.0, 128.0, 128.0)
    assert m.metric == "euclidean" and m.alignment.width == 160


def test_onnx_matches_torch_and_is_normalised(imported, checkpoint):
    model, _ = imported
    from stream.models.facenet import load_checkpoint, load_into_model

    net = load_into_model(load_checkpoint(checkpoint), checkpoint)
    crops = np.random.default_rng(1).integers(0, 255, size=(4, 160, 160, 3), dtype=np.uint8)
    with OnnxRuntimeEngine(model.manifest, model.onnx_path, max_batch=3) as engine:
        ours = engine.embed(crops)  # 4 crops, max batch 3: the dynamic axis and the split
    x = (crops[..., ::-1].astype(np.float32) - 127.5) / 128.0
    with torch.no_grad():
        ref = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    assert np.abs(ours - ref).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_already_installed_needs_force(imported, checkpoint):
    _, store = imported
    with pytest.raises(ModelError, match="already installed"):
        import_facenet(checkpoint, "facenet-test", store)


def test_wrong_keys_are_named(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelError, match="not an InceptionResnetV1 .*missing .*conv2d_1a"):
        import_facenet(path, "x", ModelStore(tmp_path / "s"))


def test_non_checkpoint_file(tmp_path: Path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(ModelError, match="not a weights-only PyTorch checkpoint"):
        import_facenet(path, "x", ModelStore(tmp_path / "s"))


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path: Path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(ModelError, match="not a weights-only PyTorch checkpoint"):
        import_facenet(path, "x", ModelStore(tmp_path / "s"))
    assert "this must never run" not in capsys.readouterr().out


def run_cli(engines: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines)}
    return subprocess.run([sys.executable, "-m", "stream", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=REPO)


def test_download_and_import_from_a_local_server(checkpoint, tmp_path: Path):
    """The published-checkpoint path end to end: `download-facenet --import` against 127.0.0.1."""
    payload = checkpoint.read_bytes()
    engines = tmp_path / "engines"
    with serve_files({checkpoint.name: payload}) as server:
        url = server.url(checkpoint.name)
        # The real pinned sha256 applies to a mirror too: a different file is refused and nothing is kept.
        proc = run_cli(engines, "models", "download-facenet", "vggface2", "--url", url, "--import")
        assert_one_line_error(proc, "does not match the pinned")
        assert not list((engines / "downloads").glob("*"))
        server.cut_after = len(payload) // 3  # a dropped connection, then the same command resumes it
        proc = run_cli(engines, "models", "download-facenet", "vggface2", "--url", url, "--sha256",
                       hashlib.sha256(payload).hexdigest(), "--import")
        assert_one_line_error(proc, "transfer", "run the same command again")
        proc = run_cli(engines, "models", "download-facenet", "vggface2", "--url", url, "--sha256",
                       hashlib.sha256(payload).hexdigest(), "--import")
        assert proc.returncode == 0, proc.stderr
        assert server.ranges[-1] == f"bytes={len(payload) // 3}-"
    assert (engines / "downloads" / checkpoint.name).read_bytes() == payload
    listed = json.loads(run_cli(engines, "models", "list", "--json").stdout)
    assert "facenet-vggface2" in {m["name"] for m in listed}
    model = ModelStore(engines).get("facenet-vggface2")
    with OnnxRuntimeEngine(model.manifest, model.onnx_path) as engine:
        out = engine.embed(np.zeros((2, 160, 160, 3), np.uint8))
    assert out.shape == (2, 512)


def test_download_offline_is_one_line(tmp_path: Path):
    proc = run_cli(tmp_path, "models", "download-facenet", "vggface2", "--url", "http://127.0.0.1:9/x.pt",
                   "--timeout", "2")
    assert_one_line_error(proc, "cannot reach 127.0.0.1:9", "import-facenet FILE")
