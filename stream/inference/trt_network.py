"""A plain network (``network.NetworkSpec``) on TensorRT: a detector's batched tiles on the GPU.

Like ``TensorRTEngine``: CUDA is touched only in ``load()``, inside the process that runs the
network (the primary context retained and pushed); the engine is found by its sidecar or built
once for this GPU and TensorRT (one profile, batch 1..max_batch on the single input); page-locked
and device buffers are allocated once at the max batch. A call copies its batch in, runs, copies
every output out and waits: the detector decodes the outputs right away, so there is nothing to
overlap with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import EngineUnavailable
from stream.inference.cuda_buffers import CudaBackend, PyCudaBackend, chunks
from stream.inference.network import NetworkSpec
from stream.inference.sidecar import BatchProfile, RuntimeFacts, find_engine

log = logging.getLogger(__name__)


class TensorRTNetwork:
    backend = "tensorrt"

    def __init__(self, spec: NetworkSpec, *, max_batch: int, engines_dir: Path, opt_batch: int | None = None,
                 workspace_mb: int = 1024, device: int = 0, backend: CudaBackend | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        self.spec = spec
        self.max_batch = max_batch
        self.profile = BatchProfile(min=1, opt=opt_batch or min(16, max_batch), max=max_batch)
        self.engines_dir = Path(engines_dir)
        self.workspace_mb = workspace_mb
        self.device_index = device
        self._backend = backend
        self._cuda_ctx: Any = None
        self._trt_logger: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._host_in: np.ndarray | None = None
        self._dev_in: Any = None
        self._host_out: dict[str, np.ndarray] = {}
        self._dev_out: dict[str, Any] = {}
        self.engine_path: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> TensorRTNetwork:
        if self._context is not None:
            return self
        from stream.inference.trt_build import TrtLogger, require_gpu_stack, runtime_facts

        require_gpu_stack(f"the {self.spec.name} network")
        import pycuda.driver as cuda
        import tensorrt as trt

        cuda.init()
        self._cuda_ctx = cuda.Device(self.device_index).retain_primary_context()
        self._cuda_ctx.push()
        try:
            self._backend = self._backend or PyCudaBackend()
            facts = runtime_facts(self.device_index)
            self.engine_path = self._engine_file(facts, trt)
            self._trt_logger = TrtLogger.create(trt)
            self._runtime = trt.Runtime(self._trt_logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self._engine is None:
                raise EngineUnavailable(f"{self.engine_path}: TensorRT could not deserialize it")
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineUnavailable(f"{self.engine_path}: TensorRT could not create an execution context")
            self.allocate(self._check_io(trt))
            log.info("%s on TensorRT %s (%s): %s", self.spec.name, facts.tensorrt_version, facts.gpu_name,
                     self.engine_path.name)
        except BaseException:
            self.close()
            raise
        return self

    def _engine_file(self, facts: RuntimeFacts, trt: Any) -> Path:
        try:
            return find_engine(self.engines_dir, self.spec, facts, self.profile)
        except EngineUnavailable as exc:
            log.info("%s; building it now", exc)
        from stream.inference.trt_build import build_network_engine

        return build_network_engine(self.spec, self.engines_dir, self.profile, workspace_mb=self.workspace_mb,
                                    runtime=facts, trt=trt)

    def _check_io(self, trt: Any) -> dict[str, tuple[int, ...]]:
        """Check the engine's tensors against the spec; returns each output's shape without the batch."""
        engine, spec = self._engine, self.spec
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [spec.input_name] or sorted(outputs) != sorted(spec.output_names):
            raise EngineUnavailable(f"{self.engine_path}: I/O tensors {inputs} -> {outputs} are not the network's "
                                    f"({spec.input_name} -> {', '.join(spec.output_names)})")
        want_in = {"uint8": trt.DataType.UINT8, "float32": trt.DataType.FLOAT}[spec.input_dtype]
        if engine.get_tensor_dtype(spec.input_name) != want_in:
            raise EngineUnavailable(f"{self.engine_path}: input {spec.input_name} is not {spec.input_dtype}")
        for name in spec.output_names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise EngineUnavailable(f"{self.engine_path}: output {name} is not float32")
        _, _, max_shape = engine.get_tensor_profile_shape(spec.input_name, 0)
        if max_shape[0] < self.max_batch:
            raise EngineUnavailable(f"{self.engine_path}: profile max batch {max_shape[0]} < {self.max_batch}")
        shapes = {}
        for name in spec.output_names:
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            if any(d < 0 for d in shape[1:]):
                raise EngineUnavailable(f"{self.engine_path}: output {name} has a dynamic axis besides the batch")
            shapes[name] = shape[1:]
        return shapes

    def allocate(self, output_shapes: dict[str, tuple[int, ...]]) -> None:
        """Page-locked host and device buffers for the max batch, once."""
        backend, spec = self._backend, self.spec
        self._stream = backend.stream()
        self._host_in = backend.pinned((self.max_batch, *spec.sample_shape), np.dtype(spec.input_dtype))
        self._dev_in = backend.device(self._host_in.nbytes)
        for name in spec.output_names:
            self._host_out[name] = backend.pinned((self.max_batch, *output_shapes[name]), np.float32)
            self._dev_out[name] = backend.device(self._host_out[name].nbytes)

    def close(self) -> None:
        # In reverse order of creation, the stream idle first: a copy may be in flight after an exception.
        if self._stream is not None:
            self._stream.synchronize()
        for alloc in [self._dev_in, *self._dev_out.values()]:
            if alloc is not None:
                alloc.free()
        self._host_in, self._dev_in, self._host_out, self._dev_out = None, None, {}, {}
        self._context = self._engine = self._runtime = self._trt_logger = self._stream = None
        if self._cuda_ctx is not None:
            self._cuda_ctx.pop()
            self._cuda_ctx.detach()
            self._cuda_ctx = None

    # -- inference -------------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        self.load()
        spec = self.spec
        batch = np.asarray(batch)
        if batch.shape[1:] != spec.sample_shape:
            raise ValueError(f"{spec.name}: expected inputs of shape (N, {', '.join(map(str, spec.sample_shape))}); "
                             f"got {batch.shape}")
        outs = {name: np.empty((len(batch), *host.shape[1:]), np.float32) for name, host in self._host_out.items()}
        for part in chunks(len(batch), self.max_batch):
            rows = part.stop - part.start
            self._host_in[:rows] = batch[part]
            self._launch(rows)
            self._stream.synchronize()
            for name, host in self._host_out.items():
                outs[name][part] = host[:rows]
        return [outs[name] for name in spec.output_names]

    def _launch(self, rows: int) -> None:
        ctx, spec = self._context, self.spec
        if not ctx.set_input_shape(spec.input_name, (rows, *spec.sample_shape)):
            raise RuntimeError(f"TensorRT refused input shape {(rows, *spec.sample_shape)} for {spec.name}")
        addresses = [(spec.input_name, self._dev_in), *self._dev_out.items()]
        if not all(ctx.set_tensor_address(name, int(alloc)) for name, alloc in addresses):
            raise RuntimeError("TensorRT refused a tensor address")
        self._backend.htod(self._dev_in, self._host_in[:rows], self._stream)
        if not ctx.execute_async_v3(self._stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name, alloc in self._dev_out.items():
            self._backend.dtoh(self._host_out[name][:rows], alloc, self._stream)
