"""BlazeFace's network on TensorRT (``TensorRTNetwork``), with stand-ins for TensorRT and the GPU only.

No GPU exists here. The stand-in execution context runs the real BlazeFace ONNX with ONNX Runtime
on the bytes in the "device" buffers, so these tests check our side of the TensorRT path: the
uint8 batch copied into pinned memory, chunking above the profile's max batch, the input shapes
and tensor addresses given to TensorRT, every output copied back in order, the engine built once
with a profile on the tile batch and found again by its sidecar, and the engine's tensors checked
against the network. Whether TensorRT itself accepts the graph is for a GPU run.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from stream.detect import DetectorConfig, FaceDetector
from stream.detect.blazeface.network import MAX_BATCH, BlazeFaceOnnxDetector, letterbox
from stream.errors import EngineUnavailable
from stream.images import read_image
from stream.inference.network import NetworkSpec
from stream.inference.select import create_network
from stream.inference.sidecar import RuntimeFacts, find_engine, read_sidecar
from stream.inference.trt_network import TensorRTNetwork
from tests.conftest import media_path
from tests.inference.test_trt_build import FakeTrt
from tests.support.trt_types import FakeTrtTypes

H100 = RuntimeFacts(tensorrt_version="10.8.0", gpu_name="NVIDIA H100", compute_capability="9.0")


class ByteAlloc:
    def __init__(self, nbytes: int) -> None:
        self.data, self.freed = np.zeros(nbytes, np.uint8), False

    def __int__(self) -> int:
        return id(self)

    def free(self) -> None:
        self.freed = True


class Stream:
    """Queues work; ``synchronize`` runs it, as a GPU finishes it."""

    handle = 7

    def __init__(self) -> None:
        self.queue: list = []

    def synchronize(self) -> None:
        while self.queue:
            self.queue.pop(0)()


class ByteBackend:
    """Device memory as raw bytes, found again by address as TensorRT would."""

    def __init__(self) -> None:
        self.by_address: dict[int, ByteAlloc] = {}

    def pinned(self, shape, dtype):
        return np.zeros(shape, dtype)

    def device(self, nbytes):
        alloc = ByteAlloc(nbytes)
        self.by_address[int(alloc)] = alloc
        return alloc

    def stream(self):
        return Stream()

    def htod(self, dst, src, stream):
        stream.queue.append(lambda: dst.data.__setitem__(slice(0, src.nbytes), src.reshape(-1).view(np.uint8)))

    def dtoh(self, dst, src, stream):
        stream.queue.append(lambda: dst.reshape(-1).view(np.uint8).__setitem__(slice(None), src.data[:dst.nbytes]))


class OrtContext:
    """An IExecutionContext stand-in: enqueues the real network (ONNX Runtime) on the stream."""

    def __init__(self, spec: NetworkSpec, backend: ByteBackend) -> None:
        self.session = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
        self.spec, self.backend = spec, backend
        self.shape: tuple | None = None
        self.addresses: dict[str, int] = {}
        self.shapes: list[tuple] = []

    def set_input_shape(self, name, shape):
        self.shape = tuple(shape)
        self.shapes.append(self.shape)
        return name == self.spec.input_name

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        shape, spec, mem = self.shape, self.spec, self.backend.by_address

        def run():
            x = mem[self.addresses[spec.input_name]].data[:int(np.prod(shape))].reshape(shape)
            for name, y in zip(spec.output_names, self.session.run(list(spec.output_names), {spec.input_name: x})):
                mem[self.addresses[name]].data[:y.nbytes] = np.ascontiguousarray(y, np.float32).reshape(-1).view(
                    np.uint8)

        self.stream.queue.append(run)
        return True


@pytest.fixture(scope="module")
def spec(engines_dir) -> NetworkSpec:
    return BlazeFaceOnnxDetector(DetectorConfig()).network_spec()


@pytest.fixture(scope="module")
def output_shapes(spec) -> dict[str, tuple[int, ...]]:
    session = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
    outs = session.run(list(spec.output_names), {spec.input_name: np.zeros((1, *spec.sample_shape), np.uint8)})
    return {name: out.shape[1:] for name, out in zip(spec.output_names, outs)}


def loaded_network(spec, output_shapes, max_batch: int, tmp_path) -> tuple[TensorRTNetwork, OrtContext]:
    backend = ByteBackend()
    network = TensorRTNetwork(spec, max_batch=max_batch, engines_dir=tmp_path, backend=backend)
    # What load() sets up on a GPU, after the engine's tensors were checked:
    network.allocate(output_shapes)
    context = OrtContext(spec, backend)
    context.stream = network._stream
    network._context = context
    return network, context


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """Letterboxed inputs with faces in them: the photos, whole."""
    detector = BlazeFaceOnnxDetector(DetectorConfig())
    size = detector.spec.input_px
    names = ["obama.jpg", "biden.jpg", "two_people.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png"]
    out = np.zeros((11, size, size, 3), np.uint8)
    for i in range(len(out)):
        letterbox(read_image(media_path(names[i % len(names)])), size, out[i])
    return out


@pytest.mark.parametrize("max_batch", [4, 64])
def test_outputs_match_onnxruntime_across_chunks(spec, output_shapes, tiles, tmp_path, max_batch):
    network, context = loaded_network(spec, output_shapes, max_batch, tmp_path)
    got = network.run(tiles)
    want = create_network(spec, "onnxruntime", max_batch=max_batch).load().run(tiles)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)
    rows = [min(max_batch, len(tiles) - s) for s in range(0, len(tiles), max_batch)]
    assert context.shapes == [(r, *spec.sample_shape) for r in rows]
    assert set(context.addresses) == {spec.input_name, *spec.output_names}
    allocs = [network._dev_in, *network._dev_out.values()]
    network.close()
    assert all(a.freed for a in allocs) and network._context is None


def test_the_detector_finds_the_same_faces_on_tensorrt(spec, output_shapes, tmp_path):
    images = [read_image(media_path(n)) for n in ("two_people.jpg", "obama.jpg", "alex-lacamoire.png")]
    images += [images[0][:300, :500].copy()]  # a tile: another letterbox
    with BlazeFaceOnnxDetector(DetectorConfig()) as cpu:
        want = cpu.detect_many(images)
    gpu = BlazeFaceOnnxDetector(DetectorConfig(runtime="tensorrt"))
    gpu._network, _ = loaded_network(spec, output_shapes, 2, tmp_path)
    got = gpu.detect_many(images)
    assert [len(f) for f in got] == [len(f) for f in want] and sum(len(f) for f in want) >= 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.xyxy, w.xyxy, atol=0.05)
        np.testing.assert_allclose(g.keypoints, w.keypoints, atol=0.05)
        np.testing.assert_allclose(g.score, w.score, atol=1e-4)
    gpu.close()


def test_the_engine_is_built_once_with_a_profile_on_the_tile_batch(spec, tmp_path):
    trt = FakeTrt(major=10)
    network = TensorRTNetwork(spec, max_batch=MAX_BATCH, engines_dir=tmp_path)
    path = network._engine_file(H100, trt)
    assert path.name == f"{spec.name}-b1-16-64-sm90.engine" and path.read_bytes() == b"serialized engine"
    assert ("shape", "input", ((1, *spec.sample_shape), (16, *spec.sample_shape), (64, *spec.sample_shape))) \
        in trt.calls
    assert ("create_network", 2) in trt.calls  # strongly typed: the uint8 input and fp32 stay as the graph has them
    sidecar = read_sidecar(path)
    assert (sidecar.model, sidecar.model_sha256, sidecar.input_name) == (spec.name, spec.sha256, "input")
    assert sidecar.output_name == "regressors,classificators"
    again = FakeTrt(major=10)
    assert network._engine_file(H100, again) == path and again.calls == []  # found by its sidecar, not rebuilt


def test_an_engine_of_another_onnx_file_is_stale(spec, tmp_path):
    TensorRTNetwork(spec, max_batch=8, engines_dir=tmp_path)._engine_file(H100, FakeTrt())
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another network")
    changed = NetworkSpec(spec.name, other, spec.input_name, spec.sample_shape, spec.input_dtype, spec.output_names)
    with pytest.raises(EngineUnavailable, match="built from model"):
        find_engine(tmp_path, changed, H100, TensorRTNetwork(changed, max_batch=8, engines_dir=tmp_path).profile)


def fake_engine(io: dict[str, tuple[str, str]], max_batch: int, anchors: int = 2304):
    names = list(io)
    mode = FakeTrtTypes.TensorIOMode
    return SimpleNamespace(
        num_io_tensors=len(names), get_tensor_name=names.__getitem__,
        get_tensor_mode=lambda n: mode.INPUT if io[n][0] == "in" else mode.OUTPUT,
        get_tensor_dtype=lambda n: FakeTrtTypes.DataType[io[n][1]],
        get_tensor_shape=lambda n: (-1, anchors, 16 if n == "regressors" else 1),
        get_tensor_profile_shape=lambda n, p: ((1, 192, 192, 3), (16, 192, 192, 3), (max_batch, 192, 192, 3)))


GOOD = {"input": ("in", "UINT8"), "regressors": ("out", "FLOAT"), "classificators": ("out", "FLOAT")}


@pytest.mark.parametrize(("io", "max_batch", "match"), [
    (GOOD, 64, None),
    ({**GOOD, "input": ("in", "FLOAT")}, 64, "input input is not uint8"),
    ({"input": ("in", "UINT8"), "regressors": ("out", "FLOAT")}, 64, r"I/O tensors \['input'\]"),
    ({**GOOD, "classificators": ("out", "HALF")}, 64, "output classificators is not float32"),
    (GOOD, 32, "profile max batch 32 < 64"),
])
def test_engine_tensors_are_checked_against_the_network(spec, tmp_path, io, max_batch, match):
    network = TensorRTNetwork(spec, max_batch=64, engines_dir=tmp_path)
    network._engine = fake_engine(io, max_batch)
    if match is None:
        assert network._check_io(FakeTrtTypes) == {"regressors": (2304, 16), "classificators": (2304, 1)}
    else:
        with pytest.raises(EngineUnavailable, match=match):
            network._check_io(FakeTrtTypes)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_a_gpu_the_tensorrt_runtime_says_what_is_missing(engines_dir):
    with pytest.raises(EngineUnavailable, match="needs TensorRT on an NVIDIA GPU; missing: .*tensorrt"):
        FaceDetector(DetectorConfig(runtime="tensorrt")).load()
