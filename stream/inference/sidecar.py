"""The JSON sidecar beside every serialized TensorRT engine, and the check that refuses a stale one.

A TensorRT engine is only valid for the exact TensorRT version and GPU model it was built on, and
for the ONNX it came from. The sidecar records those facts at build time; loading compares them
with the running machine and names the first mismatch in one line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from stream import __version__
from stream.errors import EngineUnavailable
from stream.models.manifest import ModelManifest

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = 1


class BuiltFrom(Protocol):
    """What an engine is built from: a model manifest, or a plain network's ``NetworkSpec``."""

    @property
    def name(self) -> str: ...

    @property
    def sha256(self) -> str: ...


class BatchProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int
    opt: int
    max: int

    def tag(self) -> str:
        return f"b{self.min}-{self.opt}-{self.max}"


class RuntimeFacts(BaseModel):
    """What the running machine is: compared with what the engine was built for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"


class EngineSidecar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SIDECAR_SCHEMA
    model: str
    model_sha256: str
    precision: str
    strongly_typed: bool
    input_name: str
    output_name: str
    profile: BatchProfile
    workspace_mb: int
    runtime: RuntimeFacts
    created: float
    facestream_version: str = __version__

    @classmethod
    def for_build(cls, manifest: ModelManifest, profile: BatchProfile, runtime: RuntimeFacts, *,
                  strongly_typed: bool, workspace_mb: int) -> EngineSidecar:
        return cls(model=manifest.name, model_sha256=manifest.sha256, precision=manifest.precision,
                   strongly_typed=strongly_typed, input_name=manifest.input.name, output_name=manifest.output_name,
                   profile=profile, workspace_mb=workspace_mb, runtime=runtime, created=time.time())


def sidecar_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def engine_file_name(manifest: BuiltFrom, profile: BatchProfile, compute_capability: str) -> str:
    sm = compute_capability.replace(".", "")
    return f"{manifest.name}-{profile.tag()}-sm{sm}.engine"


def write_sidecar(engine_path: Path, sidecar: EngineSidecar) -> None:
    path = sidecar_path(engine_path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(sidecar.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


def read_sidecar(engine_path: Path) -> EngineSidecar:
    path = sidecar_path(engine_path)
    try:
        return EngineSidecar.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise EngineUnavailable(
            f"{engine_path}: no sidecar {path.name}; rebuild with `facestream engine build`") from None
    except (OSError, json.JSONDecodeError, ValidationError):
        raise EngineUnavailable(f"{path}: unreadable engine sidecar; rebuild with `facestream engine build`") from None


def check_sidecar(engine_path: Path, sidecar: EngineSidecar, manifest: BuiltFrom, runtime: RuntimeFacts,
                  max_batch: int, min_batch: int = 1) -> None:
    """Raise a one-line EngineUnavailable naming the first reason this engine cannot be used here."""
    built, here = sidecar.runtime, runtime
    rebuild = "rebuild with `facestream engine build` or set engine.auto_build"
    if sidecar.model != manifest.name or sidecar.model_sha256 != manifest.sha256:
        raise EngineUnavailable(
            f"{engine_path}: built from model {sidecar.model} ({sidecar.model_sha256[:12]}), not "
            f"{manifest.name} ({manifest.sha256[:12]}): {rebuild}")
    if (built.tensorrt_version, built.gpu_name, built.compute_capability) != (
            here.tensorrt_version, here.gpu_name, here.compute_capability):
        raise EngineUnavailable(
            f"{engine_path}: built for TensorRT {built.tensorrt_version} on {built.gpu_name} "
            f"(sm{built.compute_capability.replace('.', '')}); this is TensorRT {here.tensorrt_version} on "
            f"{here.gpu_name} (sm{here.compute_capability.replace('.', '')}): {rebuild}")
    if sidecar.profile.max < max_batch:
        raise EngineUnavailable(
            f"{engine_path}: profile max batch {sidecar.profile.max} < engine.max_batch {max_batch}: {rebuild}")
    if sidecar.profile.min > min_batch:
        raise EngineUnavailable(
            f"{engine_path}: profile min batch {sidecar.profile.min} > engine.min_batch {min_batch}: {rebuild}")


def find_engine(engines_dir: Path, manifest: BuiltFrom, runtime: RuntimeFacts, profile: BatchProfile) -> Path:
    """The engine to load for ``manifest`` on this GPU: the one built for ``profile`` if it is usable,
    else any built engine of this model whose sidecar matches and whose profile covers batches
    ``profile.min``..``profile.max`` (the tightest such), so `facestream engine build --max-batch 128`
    serves a run configured for 32. Raises a one-line EngineUnavailable saying why none fits."""
    sm = runtime.compute_capability.replace(".", "")
    preferred = engines_dir / engine_file_name(manifest, profile, runtime.compute_capability)
    others = sorted(p for p in engines_dir.glob(f"{manifest.name}-b*-sm{sm}.engine") if p != preferred)
    candidates = [preferred, *others]
    usable: list[tuple[int, Path]] = []
    first_reason: str | None = None
    for path in candidates:
        if not path.is_file():
            continue
        try:
            sidecar = read_sidecar(path)
            check_sidecar(path, sidecar, manifest, runtime, profile.max, profile.min)
        except EngineUnavailable as exc:
            first_reason = first_reason or str(exc)
            continue
        if path == preferred:
            return path
        usable.append((sidecar.profile.max, path))
    if usable:
        return min(usable)[1]
    raise EngineUnavailable(first_reason or f"{preferred}: no engine built for {manifest.name} on this GPU; run "
                            f"`facestream engine build --model {manifest.name}` or set engine.auto_build")
