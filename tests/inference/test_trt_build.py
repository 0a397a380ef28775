"""The engine builder's decisions, against a stand-in for the ``tensorrt`` module (none exists here).

What is checked is our logic around TensorRT: which network flags and builder flags a model gets
on TensorRT 10 and 11, that every parser error is reported, the batch profile from the manifest,
and the atomic write of engine + sidecar. Whether TensorRT accepts the result is the GPU test's job.
"""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from stream.errors import EngineUnavailable
from stream.inference.sidecar import BatchProfile, RuntimeFacts, read_sidecar
from stream.inference.trt_build import build_engine, network_flags
from stream.models.store import InstalledModel

H100 = RuntimeFacts(tensorrt_version="10.8.0", gpu_name="NVIDIA H100", compute_capability="9.0")


class FakeTrt:
    """Just the names build_engine uses; ``major`` 11 drops the FP16 builder flag, like TensorRT 11."""

    class ILogger:
        class Severity(enum.Enum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            pass

    class MemoryPoolType(enum.Enum):
        WORKSPACE = 0

    def __init__(self, major: int = 10, parse_errors: list[tuple[str, str]] | None = None,
                 build_ok: bool = True) -> None:
        self.__version__ = f"{major}.0.0"
        self.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)
        self.BuilderFlag = SimpleNamespace(FP16="FP16") if major < 11 else SimpleNamespace()
        self.parse_errors = parse_errors or []
        self.build_ok = build_ok
        self.calls: list[tuple] = []

    def Builder(self, logger):  # named like TensorRT's factory
        trt = self

        class Builder:
            def create_network(self, flags):
                trt.calls.append(("create_network", flags))
                return "network"

            def create_builder_config(self):
                return SimpleNamespace(
                    set_memory_pool_limit=lambda pool, size: trt.calls.append(("pool", pool, size)),
                    set_flag=lambda flag: trt.calls.append(("flag", flag)),
                    add_optimization_profile=lambda p: 0)

            def create_optimization_profile(self):
                return SimpleNamespace(set_shape=lambda name, *shapes: trt.calls.append(("shape", name, shapes)))

            def build_serialized_network(self, network, config):
                return b"serialized engine" if trt.build_ok else None

        return Builder()

    def OnnxParser(self, network, logger):  # named like TensorRT's factory
        errors = [SimpleNamespace(desc=lambda d=d: d, node=lambda: 3, node_name=lambda n=n: n)
                  for n, d in self.parse_errors]
        return SimpleNamespace(parse=lambda data: not errors, num_errors=len(errors), get_error=errors.__getitem__)


@pytest.mark.parametrize(("major", "precision", "fp16_flag", "expected"), [
    (10, "fp32", False, (2, False)),  # fp32 stays fp32: strongly typed
    (10, "fp32", True, (0, True)),    # TensorRT 10 picks fp16 kernels itself: weakly typed + FP16 flag
    (10, "fp16", False, (2, False)),  # precision from the graph
    (10, "int8", True, (2, False)),   # --fp16 is moot for a typed model
    (11, "fp16", False, (2, False)),
    (11, "int8", False, (2, False)),
])
def test_network_flags(major, precision, fp16_flag, expected):
    assert network_flags(FakeTrt(major), precision, fp16_flag) == expected


def test_tensorrt_11_explains_the_missing_fp16_flag():
    with pytest.raises(EngineUnavailable, match=r"TensorRT 11.0.0 has no FP16 builder flag.*--precision fp16"):
        network_flags(FakeTrt(11), "fp32", True)


@pytest.fixture
def fp16_model(default_model, tmp_path) -> InstalledModel:
    manifest = default_model.manifest.model_copy(update={"name": "tiny-fp16", "precision": "fp16"})
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    return InstalledModel(manifest, onnx_path)


def test_build_writes_engine_and_sidecar_atomically(fp16_model, tmp_path):
    trt = FakeTrt(11)
    profile = BatchProfile(min=1, opt=8, max=64)
    path = build_engine(fp16_model, tmp_path / "engines", profile, workspace_mb=512, runtime=H100, trt=trt)
    assert path == tmp_path / "engines" / "tiny-fp16-b1-8-64-sm90.engine"
    assert path.read_bytes() == b"serialized engine"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == [], "no temp files left"
    side = read_sidecar(path)
    assert (side.precision, side.strongly_typed, side.profile, side.workspace_mb) == ("fp16", True, profile, 512)
    assert ("create_network", 2) in trt.calls and ("pool", FakeTrt.MemoryPoolType.WORKSPACE, 512 << 20) in trt.calls
    assert ("shape", "input", ((1, 3, 150, 150), (8, 3, 150, 150), (64, 3, 150, 150))) in trt.calls
    assert not any(c[0] == "flag" for c in trt.calls)


def test_every_parser_error_is_logged_and_the_error_is_one_line(fp16_model, tmp_path, caplog):
    trt = FakeTrt(10, parse_errors=[("Conv_3", "Unsupported\npadding"), ("Add_7", "broadcast mismatch")])
    with pytest.raises(EngineUnavailable) as err:
        build_engine(fp16_model, tmp_path, BatchProfile(min=1, opt=1, max=1), workspace_mb=64, runtime=H100, trt=trt)
    message = str(err.value)
    assert "\n" not in message and "2 error(s)" in message and "node Conv_3: Unsupported padding" in message
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("Conv_3" in m for m in logged) and any("Add_7: broadcast mismatch" in m for m in logged)
    assert not list(tmp_path.glob("*.engine"))


def test_failed_build_writes_nothing(fp16_model, tmp_path):
    with pytest.raises(EngineUnavailable, match="could not build an engine for tiny-fp16"):
        build_engine(fp16_model, tmp_path, BatchProfile(min=1, opt=1, max=1), workspace_mb=64, runtime=H100,
                     trt=FakeTrt(10, build_ok=False))
    assert list(Path(tmp_path).iterdir()) == [fp16_model.onnx_path]


def qdq_model(tmp_path: Path, base, zero_point_type: int) -> InstalledModel:
    """A one-node Q/DQ graph whose activation zero point has the given ONNX type."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    np_type = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}[zero_point_type]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["input", "scale", "zp"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["embedding"])],
        "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
         numpy_helper.from_array(np.array(0, np_type), "zp")])
    path = tmp_path / f"qdq-{zero_point_type}.onnx"
    onnx.save(helper.make_model(graph), str(path))
    manifest = base.model_copy(update={"name": "dlib-resnet-v1-int8", "precision": "int8",
                                       "base_model": "dlib-resnet-v1"})
    return InstalledModel(manifest, path)


def test_a_cpu_int8_model_is_refused_with_the_variant_that_works(default_model, tmp_path):
    model = qdq_model(tmp_path, default_model.manifest, onnx_type("UINT8"))
    trt = FakeTrt(10)
    with pytest.raises(EngineUnavailable, match=r"dlib-resnet-v1-int8: quantized for ONNX Runtime .*"
                                                r"quantize dlib-resnet-v1 --precision int8 --target tensorrt"):
        build_engine(model, tmp_path, BatchProfile(min=1, opt=1, max=1), workspace_mb=64, runtime=H100, trt=trt)
    assert trt.calls == [], "refused before TensorRT was asked anything"


def test_a_symmetric_int8_model_goes_to_the_parser(default_model, tmp_path):
    model = qdq_model(tmp_path, default_model.manifest, onnx_type("INT8"))
    path = build_engine(model, tmp_path / "e", BatchProfile(min=1, opt=1, max=1), workspace_mb=64, runtime=H100,
                        trt=FakeTrt(10))
    assert path.is_file()


def onnx_type(name: str) -> int:
    from onnx import TensorProto

    return getattr(TensorProto, name)
