from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from stream.errors import EngineUnavailable
from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.inference.select import EngineConfig, choose_backend, create_engine, tensorrt_available
from tests.conftest import REPO, assert_one_line_error

NO_TRT, WHY = tensorrt_available()[0] is False, tensorrt_available()[1]


@pytest.mark.skipif(not NO_TRT, reason="this machine has TensorRT and a GPU")
def test_auto_takes_onnxruntime_here_and_says_why(default_model, caplog):
    caplog.set_level(logging.INFO, logger="stream.inference.select")
    engine = create_engine(EngineConfig(), default_model)
    assert isinstance(engine, OnnxRuntimeEngine)
    assert any("engine auto: onnxruntime" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not NO_TRT, reason="this machine has TensorRT and a GPU")
def test_asking_for_tensorrt_fails_with_the_reason_never_falls_back():
    with pytest.raises(EngineUnavailable, match="engine.kind is tensorrt but .*not installed"):
        choose_backend(EngineConfig(kind="tensorrt"))


def test_profile_order_is_validated():
    with pytest.raises(ValueError, match="min_batch <= opt_batch <= max_batch"):
        EngineConfig(min_batch=8, opt_batch=4, max_batch=32)


def test_onnxruntime_is_always_honoured(default_model):
    assert isinstance(create_engine(EngineConfig(kind="onnxruntime", max_batch=8), default_model), OnnxRuntimeEngine)


@pytest.mark.skipif(not NO_TRT, reason="this machine has TensorRT and a GPU")
@pytest.mark.parametrize("args", [["engine", "build"], ["engine", "check"]])
def test_engine_commands_name_what_is_missing(cli, args):
    assert_one_line_error(cli(*args), "needs TensorRT on an NVIDIA GPU; missing:", "tensorrt")


@pytest.mark.skipif(not NO_TRT, reason="this machine has TensorRT and a GPU")
def test_run_with_engine_tensorrt_fails_before_starting(cli, tmp_path):
    proc = cli("run", "--engine", "tensorrt", "--source", REPO / "README.md", "--no-progress")
    assert_one_line_error(proc, "engine.kind is tensorrt but")


def test_engine_info_runs(cli):
    proc = cli("engine", "info", "--json", check=True)
    assert '"tensorrt_usable"' in proc.stdout


@pytest.mark.gpu
@pytest.mark.skipif(NO_TRT, reason=f"TensorRT path unavailable here: {WHY}")
def test_tensorrt_matches_onnxruntime_on_a_real_gpu(default_model):  # pragma: no cover - needs a GPU
    import numpy as np

    from stream.inference.tensorrt import TensorRTEngine
    from stream.photos import load_face_crops
    from tests.conftest import media_path

    crops = load_face_crops([media_path("two_people.jpg"), media_path("obama.jpg")], default_model.manifest)
    cfg = EngineConfig(kind="tensorrt", max_batch=2)
    with TensorRTEngine.for_model(default_model, cfg) as trt_engine, \
            OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path) as ort:
        a, b = trt_engine.embed(crops), ort.embed(crops)  # 3 crops, max batch 2: both buffer sets
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.9999


@pytest.mark.slow
def test_engine_package_imports_without_tensorrt():
    proc = subprocess.run([sys.executable, "-c", "import stream.inference.tensorrt, stream.inference.trt_build"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


def test_engine_model_may_be_given_as_an_installed_onnx_file(default_model, tmp_path):
    from stream.cli.engine_cmd import resolve_model
    from stream.errors import ModelError

    assert resolve_model(str(default_model.onnx_path)).name == default_model.name
    assert resolve_model(None).name == default_model.name
    stranger = tmp_path / "other.onnx"
    stranger.write_bytes(b"not an installed model")
    with pytest.raises(ModelError, match="other.onnx: not the ONNX of an installed model"):
        resolve_model(str(stranger))
    with pytest.raises(ModelError, match="missing.onnx: no such ONNX file"):
        resolve_model(str(tmp_path / "missing.onnx"))
