"""Build a TensorRT engine from a model's ONNX: one optimization profile on the batch axis.

Precision comes from the ONNX graph (FP16 weights, INT8 Q/DQ): the network is created strongly
typed, which TensorRT 10 supports and TensorRT 11 requires. For an FP32 ONNX on TensorRT 10 the
``fp16`` option may instead set the builder's FP16 flag (weakly typed); TensorRT 11 removed that
flag, so there the FP16 variant from ``facestream models quantize`` is the way.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

from stream.errors import EngineUnavailable
from stream.inference.gpu import gpu_visible
from stream.inference.network import NetworkSpec
from stream.inference.sidecar import BatchProfile, EngineSidecar, RuntimeFacts, engine_file_name, write_sidecar
from stream.models.store import InstalledModel

log = logging.getLogger(__name__)


def missing_gpu_stack() -> list[str]:
    """What is missing for the TensorRT path, checked without importing or initialising CUDA."""
    missing = [f"the {m} package" for m in ("tensorrt", "pycuda") if importlib.util.find_spec(m) is None]
    if not gpu_visible():
        missing.append("an NVIDIA GPU")
    return missing


def require_gpu_stack(what: str) -> None:
    missing = missing_gpu_stack()
    if missing:
        raise EngineUnavailable(f"{what} needs TensorRT on an NVIDIA GPU; missing: {', '.join(missing)} "
                                "(pip install 'facestream[gpu]' on a machine with CUDA)")


class TrtLogger:
    """Route TensorRT's log through Python logging (created lazily: tensorrt may be absent)."""

    @staticmethod
    def create(trt: Any) -> Any:
        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:
                level = {trt.ILogger.Severity.INTERNAL_ERROR: logging.ERROR, trt.ILogger.Severity.ERROR: logging.ERROR,
                         trt.ILogger.Severity.WARNING: logging.WARNING,
                         trt.ILogger.Severity.INFO: logging.DEBUG}.get(severity, logging.DEBUG)
                log.log(level, "TensorRT: %s", msg)

        return _Logger()


def runtime_facts(device_index: int = 0) -> RuntimeFacts:
    """TensorRT version and the GPU, from inside the process that owns the CUDA context."""
    import pycuda.driver as cuda
    import tensorrt as trt

    device = cuda.Device(device_index)
    major, minor = device.compute_capability()
    return RuntimeFacts(tensorrt_version=trt.__version__, gpu_name=device.name(), compute_capability=f"{major}.{minor}")


def network_flags(trt: Any, precision: str, fp16_flag: bool) -> tuple[int, bool]:
    """(create_network flags, whether to set BuilderFlag.FP16) for this TensorRT and model.

    A model that carries its precision (fp16 weights, int8 Q/DQ) is built strongly typed, so
    TensorRT keeps exactly the graph's types. An fp32 model is strongly typed too (pure fp32)
    unless ``fp16_flag`` asks TensorRT 10 to pick fp16 kernels itself (weakly typed). TensorRT 11
    has no FP16 builder flag: detected with hasattr, and explained.
    """
    typed_precision = precision in ("fp16", "int8")
    has_strong = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if typed_precision and not has_strong:
        raise EngineUnavailable(f"TensorRT {trt.__version__} cannot build strongly typed networks; "
                                f"a {precision} model needs TensorRT >= 10")
    if fp16_flag and not typed_precision:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineUnavailable(f"--fp16: TensorRT {trt.__version__} has no FP16 builder flag (TensorRT 11 "
                                    "builds strongly typed networks only); build the fp16 model instead: "
                                    "`facestream models quantize NAME --precision fp16`")
        return 0, True
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if has_strong else 0
    return flags, False


def parser_errors(parser: Any) -> list[str]:
    """Every error the ONNX parser recorded, one line each (node and description)."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = getattr(err, "node_name", None)
        where = f"node {node()}" if callable(node) and node() else f"node #{err.node()}"
        out.append(f"{where}: {' '.join(str(err.desc()).split())}")
    return out


def require_symmetric_int8(model: InstalledModel) -> None:
    """TensorRT takes only symmetric int8 Q/DQ (int8 zero points of 0); an ONNX Runtime (CPU) int8
    model has uint8 activations. Refuse it in one line, naming the variant that would work."""
    if model.manifest.precision != "int8":
        return
    import onnx

    graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
    uint8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.UINT8}
    if any(n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in uint8 for n in graph.node):
        base = model.manifest.base_model or model.name
        raise EngineUnavailable(f"{model.name}: quantized for ONNX Runtime (uint8 activations), which TensorRT "
                                f"cannot run; make the TensorRT variant: `facestream models quantize {base} "
                                "--precision int8 --target tensorrt --calib DIR`")


def build_engine(model: InstalledModel, engines_dir: Path, profile: BatchProfile, *, workspace_mb: int,
                 runtime: RuntimeFacts, fp16_flag: bool = False, trt: Any = None) -> Path:
    """Build, write ``<engines_dir>/<name>.engine`` atomically with its sidecar, and return the path.

    Must run where a CUDA context is current (``TensorRTEngine`` or ``facestream engine build``).
    """
    if trt is None:
        import tensorrt as trt

    manifest = model.manifest
    require_symmetric_int8(model)
    flags, set_fp16 = network_flags(trt, manifest.precision, fp16_flag)
    spec = manifest.input
    started = time.monotonic()
    serialized = _serialize(trt, model.onnx_path, manifest.name, manifest.precision, flags, set_fp16, spec.name,
                            (3, spec.height, spec.width), profile, workspace_mb)
    path = engines_dir / engine_file_name(manifest, profile, runtime.compute_capability)
    _write(path, serialized, EngineSidecar.for_build(manifest, profile, runtime, strongly_typed=bool(flags),
                                                     workspace_mb=workspace_mb))
    log.info("built %s in %.1f s", path, time.monotonic() - started)
    return path


def build_network_engine(spec: NetworkSpec, engines_dir: Path, profile: BatchProfile, *, workspace_mb: int,
                         runtime: RuntimeFacts, trt: Any = None) -> Path:
    """``build_engine`` for a plain network (a detector's): fp32, strongly typed where TensorRT can,
    one profile on the batch axis of its single input, which keeps its own type (BlazeFace: uint8)."""
    if trt is None:
        import tensorrt as trt

    flags, set_fp16 = network_flags(trt, "fp32", False)
    started = time.monotonic()
    serialized = _serialize(trt, Path(spec.onnx_path), spec.name, "fp32", flags, set_fp16, spec.input_name,
                            spec.sample_shape, profile, workspace_mb)
    path = engines_dir / engine_file_name(spec, profile, runtime.compute_capability)
    _write(path, serialized, EngineSidecar(
        model=spec.name, model_sha256=spec.sha256, precision="fp32", strongly_typed=bool(flags),
        input_name=spec.input_name, output_name=",".join(spec.output_names), profile=profile,
        workspace_mb=workspace_mb, runtime=runtime, created=time.time()))
    log.info("built %s in %.1f s", path, time.monotonic() - started)
    return path


def _serialize(trt: Any, onnx_path: Path, name: str, precision: str, flags: int, set_fp16: bool, input_name: str,
               sample_shape: tuple[int, ...], profile: BatchProfile, workspace_mb: int) -> bytes:
    logger = TrtLogger.create(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = parser_errors(parser)
        for line in errors:
            log.error("%s: ONNX parser: %s", onnx_path, line)
        raise EngineUnavailable(f"{onnx_path}: TensorRT's ONNX parser failed with {len(errors)} error(s), "
                                f"first: {errors[0] if errors else 'unknown'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if set_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    shape = tuple(sample_shape)
    opt_profile.set_shape(input_name, (profile.min, *shape), (profile.opt, *shape), (profile.max, *shape))
    if config.add_optimization_profile(opt_profile) < 0:
        raise EngineUnavailable(f"TensorRT rejected the batch profile {profile.tag()} for {name}")
    log.info("building TensorRT engine for %s (%s, %s, workspace %d MB); this takes a while", name,
             precision, profile.tag(), workspace_mb)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineUnavailable(f"TensorRT could not build an engine for {name} (see the log above)")
    return bytes(serialized)


def _write(path: Path, serialized: bytes, sidecar: EngineSidecar) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(serialized)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    write_sidecar(path, sidecar)
