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

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream.errors import EngineUnavailable
from stream.inference.base import Engine
from stream.inference.gpu import gpu_visible
from stream.models.store import InstalledModel

log = logging.getLogger(__name__)


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["auto", "tensorrt", "onnxruntime"] = Field(
        default="auto", description="auto: TensorRT when a GPU and TensorRT are present, else ONNX Runtime")
    max_batch: int = Field(default=32, ge=1, le=4096,
                           description="largest batch one engine call takes (TensorRT: the profile's max)")
    intra_threads: int = Field(default=0, ge=0, le=256,
                               description="ONNX Runtime threads per inference; 0 = all cores")
    min_batch: int = Field(default=1, ge=1, le=4096, description="TensorRT profile: smallest batch")
    opt_batch: int | None = Field(default=None, ge=1, le=4096,
                                  description="TensorRT profile: batch tuned for; null = min(16, max_batch)")
    workspace_mb: int = Field(default=1024, ge=16, le=1 << 20, description="TensorRT builder workspace")
    auto_build: bool = Field(default=True,
                             description="build (or rebuild) the TensorRT engine when missing or stale")
    device: int = Field(default=0, ge=0, le=64, description="CUDA device index")
    engines_dir: Path | None = Field(default=None, description="where engines live; default: the model store root")

    @model_validator(mode="after")
    def _profile_order(self) -> EngineConfig:
        if not self.min_batch <= self.profile_opt <= self.max_batch:
            raise ValueError(f"need min_batch <= opt_batch <= max_batch; got {self.min_batch}, "
                             f"{self.profile_opt}, {self.max_batch}")
        return self

    @property
    def profile_opt(self) -> int:
        return self.opt_batch if self.opt_batch is not None else max(self.min_batch, min(16, self.max_batch))


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
