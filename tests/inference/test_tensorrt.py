"""TensorRTEngine's per-batch calls and I/O checks, with stand-ins for TensorRT and the GPU only.

The stand-in execution context runs the real model with ONNX Runtime on the "device" buffers, so
the test checks preprocessing into pinned memory, chunking above max batch, the input shape and
tensor addresses given to TensorRT, and the order results come back in, against the CPU engine.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from stream.errors import EngineUnavailable
from stream.inference.cuda_buffers import allocate
from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.inference.sidecar import BatchProfile
from stream.inference.tensorrt import TensorRTEngine
from tests.inference.test_cuda_buffers import FakeBackend
from tests.support.trt_types import FakeTrtTypes


class AddressedBackend(FakeBackend):
    """FakeBackend whose device allocations can be found again by address, as TensorRT would."""

    def __init__(self) -> None:
        super().__init__()
        self.by_address: dict[int, object] = {}

    def device(self, nbytes):
        alloc = super().device(nbytes)
        self.by_address[int(alloc)] = alloc
        return alloc


class OrtContext:
    """An IExecutionContext stand-in: enqueues the real network (ONNX Runtime) on the stream."""

    def __init__(self, model, backend: AddressedBackend) -> None:
        self.session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
        self.manifest, self.backend = model.manifest, backend
        self.shape: tuple | None = None
        self.addresses: dict[str, int] = {}
        self.calls: list[tuple] = []

    def set_input_shape(self, name, shape):
        self.calls.append(("shape", name, tuple(shape)))
        self.shape = tuple(shape)
        return name == self.manifest.input.name

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        shape, m = self.shape, self.manifest
        dev_in = self.backend.by_address[self.addresses[m.input.name]]
        dev_out = self.backend.by_address[self.addresses[m.output_name]]

        def run():
            x = dev_in.data[: int(np.prod(shape))].reshape(shape)
            y = self.session.run([m.output_name], {m.input.name: x})[0]
            dev_out.data[: y.size] = y.ravel()

        self.backend.stream_obj.queue.append(run)
        return True


def loaded_engine(model, max_batch: int, tmp_path) -> tuple[TensorRTEngine, OrtContext, AddressedBackend]:
    backend = AddressedBackend()
    engine = TensorRTEngine(model, profile=BatchProfile(min=1, opt=max_batch, max=max_batch), engines_dir=tmp_path,
                            backend=backend)
    # What _load() would have set up on a GPU:
    context = OrtContext(model, backend)
    backend.stream_obj = engine._stream = backend.stream()
    engine._stream.synchronize = lambda: None
    engine._context = context
    spec = model.manifest.input
    engine._sets = allocate(backend, max_batch, (3, spec.height, spec.width), model.manifest.embedding_size)
    engine._loaded = True
    return engine, context, backend


@pytest.fixture(scope="module")
def crops(default_model) -> np.ndarray:
    rng = np.random.default_rng(0)
    spec = default_model.manifest.input
    return rng.integers(0, 256, (11, spec.height, spec.width, 3), dtype=np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("max_batch", [4, 16])
def test_embed_matches_onnxruntime_across_chunks(default_model, crops, tmp_path, max_batch):
    engine, context, _ = loaded_engine(default_model, max_batch, tmp_path)
    sets = list(engine._sets)
    got = engine.embed(crops)
    with OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path, max_batch=32) as cpu:
        want = cpu.embed(crops)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    spec = default_model.manifest.input
    rows = [min(max_batch, len(crops) - s) for s in range(0, len(crops), max_batch)]
    assert [c for c in context.calls if c[0] == "shape"] == [
        ("shape", spec.name, (r, 3, spec.height, spec.width)) for r in rows]
    engine.close()
    assert engine._sets == [] and all(s.dev_in.freed and s.dev_out.freed for s in sets)


def test_empty_batch(default_model, tmp_path):
    engine, context, _ = loaded_engine(default_model, 4, tmp_path)
    assert engine.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, default_model.manifest.embedding_size)
    assert context.calls == []


def test_refused_input_shape_is_an_error(default_model, crops, tmp_path):
    engine, context, _ = loaded_engine(default_model, 4, tmp_path)
    context.set_input_shape = lambda name, shape: False
    with pytest.raises(RuntimeError, match=r"TensorRT refused input shape \(4, 3, 150, 150\)"):
        engine.embed(crops)


def fake_cuda_engine(io: dict[str, tuple[str, str]], max_batch: int):
    names = list(io)
    mode = FakeTrtTypes.TensorIOMode
    return SimpleNamespace(
        num_io_tensors=len(names), get_tensor_name=names.__getitem__,
        get_tensor_mode=lambda n: mode.INPUT if io[n][0] == "in" else mode.OUTPUT,
        get_tensor_dtype=lambda n: FakeTrtTypes.DataType[io[n][1]],
        get_tensor_profile_shape=lambda n, p: ((1, 3, 150, 150), (8, 3, 150, 150), (max_batch, 3, 150, 150)))


@pytest.mark.parametrize(("io", "max_batch", "match"), [
    ({"input": ("in", "FLOAT"), "embedding": ("out", "FLOAT")}, 32, None),
    ({"data": ("in", "FLOAT"), "embedding": ("out", "FLOAT")}, 32, r"I/O tensors \['data'\]"),
    ({"input": ("in", "FLOAT"), "embedding": ("out", "HALF")}, 32, "tensor embedding is not float32"),
    ({"input": ("in", "FLOAT"), "embedding": ("out", "FLOAT")}, 16, "profile max batch 16 < 32"),
])
def test_engine_io_is_checked_against_the_manifest(default_model, tmp_path, io, max_batch, match):
    if default_model.manifest.output_name != "embedding":
        io = {(default_model.manifest.output_name if k == "embedding" else k): v for k, v in io.items()}
    engine = TensorRTEngine(default_model, profile=BatchProfile(min=1, opt=8, max=32), engines_dir=tmp_path)
    engine._engine = fake_cuda_engine(io, max_batch)
    if match is None:
        engine._check_io(FakeTrtTypes)
    else:
        with pytest.raises(EngineUnavailable, match=match):
            engine._check_io(FakeTrtTypes)


def test_submit_returns_while_the_gpu_runs_and_alternates_sets(default_model, crops, tmp_path):
    engine, _, _ = loaded_engine(default_model, 4, tmp_path)
    first, second = engine.submit(crops[:4]), engine.submit(crops[4:7])
    assert not first.done() and not second.done(), "enqueued, not waited for"
    assert first.buf is not second.buf
    with OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path, max_batch=32) as cpu:
        want = cpu.embed(crops)
    np.testing.assert_allclose(second.result(), want[4:7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first.result(), want[:4], rtol=1e-5, atol=1e-5)
    over = engine.submit(crops)  # above max batch: embedded (double-buffered) before it returns
    assert over.done()
    np.testing.assert_allclose(over.result(), want, rtol=1e-5, atol=1e-5)
    last = engine.submit(crops[:2])
    engine.close()  # buffers freed, but what was submitted was read back first
    last.buf.done = None  # the set is gone: result() must not touch it
    np.testing.assert_allclose(last.result(), want[:2], rtol=1e-5, atol=1e-5)
