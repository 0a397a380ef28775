"""Choose the inference engine: TensorRT on an NVIDIA GPU when it can run, else ONNX Runtime.

``auto`` picks TensorRT only when the ``tensorrt`` and ``pycuda`` packages import and a CUDA GPU is
visible, and logs which engine it chose and why. ``tensorrt`` means TensorRT or a failed run with
the reason: never a silent fall-back to the CPU.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Literal

from stream.errors import EngineUnavailable
from stream.inference.base import Engine
from stream.inference.config import EngineConfig
from stream.inference.gpu import gpu_visible
from stream.inference.network import Network, NetworkSpec
from stream.models.store import InstalledModel

log = logging.getLogger(__name__)

__all__ = ["EngineConfig", "choose_backend", "cpu_engine", "create_engine", "tensorrt_available"]


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT can run here, without initialising CUDA in this process."""
    missing = [m for m in ("tensorrt", "pycuda") if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"{' and '.join(missing)} not installed (pip install 'facestream[gpu]')"
    if not gpu_visible():
        return False, "no NVIDIA GPU visible (no /dev/nvidia0 and nvidia-smi lists none)"
    return True, "tensorrt, pycuda and an NVIDIA GPU are present"


def choose_backend(cfg: EngineConfig) -> str:
    """'tensorrt' or 'onnxruntime' for this config on this machine; raises when TensorRT is required."""
    if cfg.kind == "onnxruntime":
        return "onnxruntime"
    ok, reason = tensorrt_available()
    if cfg.kind == "tensorrt":
        if not ok:
            raise EngineUnavailable(f"engine.kind is tensorrt but {reason}")
        return "tensorrt"
    log.info("engine auto: %s (%s)", "tensorrt" if ok else "onnxruntime", reason)
    return "tensorrt" if ok else "onnxruntime"


def create_engine(cfg: EngineConfig, model: InstalledModel) -> Engine:
    """Construct (not load) the engine; call ``load()`` in the process that will run it."""
    backend = choose_backend(cfg)
    if backend == "tensorrt":
        from stream.inference.tensorrt import TensorRTEngine

        return TensorRTEngine.for_model(model, cfg)
    from stream.inference.onnxrt import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model.manifest, model.onnx_path, max_batch=cfg.max_batch,
                             intra_threads=cfg.intra_threads)


def cpu_engine(model: InstalledModel, max_batch: int = 32) -> Engine:
    """An ONNX Runtime engine for one-shot work on photos (enroll, embed, eval, the web page): no GPU start-up."""
    from stream.inference.onnxrt import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model.manifest, model.onnx_path, max_batch=max_batch)


def create_network(spec: NetworkSpec, runtime: Literal["onnxruntime", "tensorrt"], *, max_batch: int,
                   threads: int = 1, engines_dir: Path | None = None) -> Network:
    """Construct (not load) ``spec`` on ``runtime``. ``threads``: ONNX Runtime's; ``max_batch``: the
    TensorRT profile's largest batch (larger batches are split); ``engines_dir``: where TensorRT
    engines are kept (default: beside the ONNX file)."""
    if runtime == "tensorrt":
        from stream.inference.trt_network import TensorRTNetwork

        return TensorRTNetwork(spec, max_batch=max_batch, engines_dir=engines_dir or Path(spec.onnx_path).parent)
    from stream.inference.onnxrt import OnnxRuntimeNetwork

    return OnnxRuntimeNetwork(spec, threads=threads)
