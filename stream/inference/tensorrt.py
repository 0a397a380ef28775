"""TensorRT engine (TensorRT 10/11 API, pycuda): the GPU production path behind the Engine interface.

CUDA is touched only in ``_load()``, which runs inside the embedding process (spawned, never
forked after CUDA init). It retains the device's primary context and pushes it (no
``pycuda.autoinit``), finds or builds the engine for this GPU and TensorRT version (sidecar
checked), and allocates two page-locked + device buffer sets at the profile's max batch. Batches
alternate between the sets, so the host preprocesses batch k+1 while the GPU runs batch k: within
one ``embed`` call above max batch (``cuda_buffers.run_double_buffered``), and across calls through
``submit``, which returns once the batch is enqueued (the embedder collects its next batch meanwhile).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import EngineUnavailable
from stream.inference.base import Engine, PendingEmbeddings, ReadyEmbeddings
from stream.inference.cuda_buffers import (
    BufferSet,
    CudaBackend,
    PyCudaBackend,
    allocate,
    launch_on,
    run_double_buffered,
)
from stream.inference.sidecar import BatchProfile, RuntimeFacts, find_engine
from stream.inference.trt_build import TrtLogger, runtime_facts
from stream.models.preprocess import to_input_tensor
from stream.models.store import InstalledModel, ModelStore

log = logging.getLogger(__name__)


class TensorRTEngine(Engine):
    backend = "tensorrt"
    warm_large_batches = True

    def __init__(self, model: InstalledModel, *, profile: BatchProfile, engines_dir: Path, workspace_mb: int = 1024,
                 auto_build: bool = True, device: int = 0, backend: CudaBackend | None = None) -> None:
        super().__init__(model.manifest, profile.max)
        self.model = model
        self.profile = profile
        self.engines_dir = Path(engines_dir)
        self.workspace_mb = workspace_mb
        self.auto_build = auto_build
        self.device_index = device
        self._backend = backend
        self._cuda_ctx: Any = None
        self._trt_logger: Any = None  # kept with the runtime: TensorRT wants both to outlive the engine
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._sets: list[BufferSet] = []
        self._turn = 0  # which set the next submit() uses
        self.engine_path: Path | None = None

    @classmethod
    def for_model(cls, model: InstalledModel, cfg: Any) -> TensorRTEngine:
        profile = BatchProfile(min=cfg.min_batch, opt=cfg.profile_opt, max=cfg.max_batch)
        return cls(model, profile=profile, engines_dir=cfg.engines_dir or ModelStore().root,
                   workspace_mb=cfg.workspace_mb, auto_build=cfg.auto_build, device=cfg.device)

    # -- lifecycle -------------------------------------------------------------------------------
    def _load(self) -> None:
        from stream.inference.trt_build import require_gpu_stack

        require_gpu_stack(f"engine {self.manifest.name}")
        import pycuda.driver as cuda
        import tensorrt as trt

        cuda.init()
        device = cuda.Device(self.device_index)
        self._cuda_ctx = device.retain_primary_context()
        self._cuda_ctx.push()
        try:
            self._backend = self._backend or PyCudaBackend()
            facts = runtime_facts(self.device_index)
            self.engine_path = self._engine_file(facts)
            self._trt_logger = TrtLogger.create(trt)
            self._runtime = trt.Runtime(self._trt_logger)
            self._engine = self._deserialize(self._runtime, self.engine_path)
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineUnavailable(f"{self.engine_path}: TensorRT could not create an execution context")
            self._check_io(trt)
            self._stream = self._backend.stream()
            spec = self.manifest.input
            self._sets = allocate(self._backend, self.max_batch, (3, spec.height, spec.width),
                                  self.manifest.embedding_size)
            log.info("TensorRT %s on %s (sm%s): %s, profile %s", facts.tensorrt_version, facts.gpu_name,
                     facts.compute_capability.replace(".", ""), self.engine_path.name, self.profile.tag())
        except BaseException:
            self._release()
            raise

    def _engine_file(self, facts: RuntimeFacts) -> Path:
        try:
            return find_engine(self.engines_dir, self.manifest, facts, self.profile)
        except EngineUnavailable as exc:
            if not self.auto_build:
                raise
            log.warning("%s; building it now (engine.auto_build)", exc)
        from stream.inference.trt_build import build_engine

        return build_engine(self.model, self.engines_dir, self.profile, workspace_mb=self.workspace_mb, runtime=facts)

    @staticmethod
    def _deserialize(runtime: Any, path: Path) -> Any:
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineUnavailable(f"{path}: TensorRT could not deserialize it (corrupt, or another version)")
        return engine

    def _check_io(self, trt: Any) -> None:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        want_in, want_out = self.manifest.input.name, self.manifest.output_name
        if inputs != [want_in] or want_out not in outputs:
            raise EngineUnavailable(f"{self.engine_path}: I/O tensors {inputs} -> {outputs} do not match the manifest "
                                    f"({want_in} -> {want_out})")
        for name in (want_in, want_out):
            if self._engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise EngineUnavailable(f"{self.engine_path}: tensor {name} is not float32")
        _, _, max_shape = self._engine.get_tensor_profile_shape(want_in, 0)
        if max_shape[0] < self.max_batch:
            raise EngineUnavailable(f"{self.engine_path}: profile max batch {max_shape[0]} < {self.max_batch}")

    def _release(self) -> None:
        # Explicit, in reverse order of creation: buffers (once the stream is idle: a copy may still
        # be in flight after an exception), context, engine, runtime, then the CUDA context.
        if self._stream is not None:
            self._stream.synchronize()
        for buf in self._sets:
            if buf.in_flight is not None:  # read back first: a submitted batch stays readable after close
                buf.in_flight.result()
            buf.free()
        self._sets = []
        self._context = None
        self._engine = None
        self._runtime = None
        self._trt_logger = None
        self._stream = None
        if self._cuda_ctx is not None:
            self._cuda_ctx.pop()
            self._cuda_ctx.detach()
            self._cuda_ctx = None

    # -- inference -------------------------------------------------------------------------------
    def embed(self, crops_bgr: np.ndarray) -> np.ndarray:
        self.load()
        crops = np.asarray(crops_bgr)
        if len(crops) == 0:
            return np.zeros((0, self.manifest.embedding_size), np.float32)
        return run_double_buffered(crops, self._sets, self.max_batch, self._fill, self._launch,
                                   self.manifest.embedding_size)

    def submit(self, crops_bgr: np.ndarray) -> PendingEmbeddings:
        """Enqueue one batch (<= max batch) on the next buffer set and return without waiting for it."""
        self.load()
        crops = np.asarray(crops_bgr)
        if not 0 < len(crops) <= self.max_batch:
            return ReadyEmbeddings(self.embed(crops))
        buf = self._sets[self._turn % len(self._sets)]
        self._turn += 1
        return launch_on(buf, crops, self._fill, self._launch)

    def _fill(self, chunk: np.ndarray, host_in: np.ndarray) -> None:
        to_input_tensor(chunk, self.manifest.input, out=host_in)

    def _launch(self, buf: BufferSet, rows: int) -> None:
        spec = self.manifest.input
        ctx = self._context
        if not ctx.set_input_shape(spec.name, (rows, 3, spec.height, spec.width)):
            raise RuntimeError(f"TensorRT refused input shape ({rows}, 3, {spec.height}, {spec.width})")
        if not (ctx.set_tensor_address(spec.name, int(buf.dev_in))
                and ctx.set_tensor_address(self.manifest.output_name, int(buf.dev_out))):
            raise RuntimeError("TensorRT refused a tensor address")
        self._backend.htod(buf.dev_in, buf.host_in[:rows], self._stream)
        if not ctx.execute_async_v3(self._stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self._backend.dtoh(buf.host_out[:rows], buf.dev_out, self._stream)
        buf.done.record(self._stream)

    def _infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - embed() is overridden
        raise NotImplementedError("TensorRTEngine embeds through its double-buffered embed()")
