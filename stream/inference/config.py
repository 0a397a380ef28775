"""The inference engine's settings, apart from the engines: every process reads the config, few run one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

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
