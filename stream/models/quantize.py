"""Precision recipes at the ONNX level, shared by ONNX Runtime and TensorRT.

TensorRT 10 deprecated its INT8 calibrators and TensorRT 11 builds strongly typed networks only,
so precision has to live in the graph itself:

- ``fp16``: weights and compute in float16, inputs and outputs kept float32 (a drop-in model).
- ``int8``: static Q/DQ quantization (per-channel weights, activations calibrated on aligned
  crops of real faces). Two schemes, because the two runtimes want different ones:
  ``target="cpu"`` (default): uint8 activations with a zero point, int8 weights (U8S8). ONNX
  Runtime's CPU kernels are built for it, and post-ReLU activations keep all 8 bits: cosine to
  FP32 0.996 on our held-out photos. ``target="tensorrt"``: symmetric int8 activations and
  weights (S8S8, zero point 0), the only Q/DQ TensorRT accepts; cosine 0.987 on the same photos.

Each variant is installed as its own model (``<name>-fp16``, ``<name>-int8``) with its own
manifest and sha256, and ``base_model`` set so galleries built with the base model stay usable.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from stream.errors import FacestreamError, ModelError
from stream.models.manifest import ModelManifest, sha256_file
from stream.models.preprocess import to_input_tensor
from stream.models.store import InstalledModel, ModelStore

log = logging.getLogger(__name__)

Precision = Literal["fp16", "int8"]
#: The aligned faces to calibrate int8 on, for the manifest of the model being quantized
#: (``stream.photos.calibration(DIR)``: the models layer reads no photos itself).
Calibration = Callable[[ModelManifest], np.ndarray]


def to_fp16(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save_model(converted, str(dst))


class _CropReader:
    """Feeds preprocessed calibration crops to ONNX Runtime's calibrator, a few at a time."""

    def __init__(self, crops_bgr: np.ndarray, manifest: ModelManifest, batch: int = 1) -> None:
        # batch 1: the histogram calibrators (percentile, entropy) need equal shapes for every batch
        self.batches = [to_input_tensor(crops_bgr[i : i + batch], manifest.input)
                        for i in range(0, len(crops_bgr), batch)]
        self.name = manifest.input.name
        self._it = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch}

    def rewind(self) -> None:
        self._it = iter(self.batches)


def to_int8(src: Path, dst: Path, manifest: ModelManifest, crops_bgr: np.ndarray, *,
            method: str = "minmax", per_channel: bool = True, target: str = "cpu") -> None:
    """Static Q/DQ quantization of ``src`` calibrated on ``crops_bgr`` (scheme per ``target``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if target not in ("cpu", "tensorrt"):
        raise FacestreamError(f"--target {target!r}: use cpu or tensorrt")
    symmetric = target == "tensorrt"
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(dst), _CropReader(crops_bgr, manifest),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=methods[method],
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
        )


def quantize(name: str, precision: Precision, calibration: Calibration | None = None, *,
             store: ModelStore | None = None, method: str = "minmax", target: str = "cpu") -> InstalledModel:
    """Create and install ``<name>-<precision>`` (``<name>-int8-trt`` for a TensorRT int8) from ``name``."""
    store = store or ModelStore()
    base = store.get(name)
    if base.manifest.precision != "fp32":
        raise ModelError(f"{name}: already {base.manifest.precision}; quantize the fp32 model")
    if precision not in ("fp16", "int8"):
        raise FacestreamError(f"--precision {precision!r}: use fp16 or int8")
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        out = Path(tmp) / "model.onnx"
        if precision == "fp16":
            to_fp16(base.onnx_path, out)
        else:
            if calibration is None:
                raise FacestreamError("int8 needs calibration photos: pass --calib DIR (a folder of face photos, "
                                      "ideally from your own cameras)")
            crops = calibration(base.manifest)
            log.info("calibrating int8 on %d faces (%s)", len(crops), method)
            to_int8(base.onnx_path, out, base.manifest, crops, method=method, target=target)
        suffix = f"{precision}-trt" if precision == "int8" and target == "tensorrt" else precision
        manifest = base.manifest.model_copy(update={
            "name": f"{base.name}-{suffix}",
            "description": f"{base.manifest.description} [{precision}]",
            "source": f"{base.name} ({base.manifest.sha256[:12]}) quantized to {precision}",
            "sha256": sha256_file(out),
            "precision": precision,
            "base_model": base.name,
        })
        return store.install(ModelManifest.model_validate(manifest.model_dump()), out)
