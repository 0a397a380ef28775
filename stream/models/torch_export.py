"""A PyTorch embedding network -> ONNX with a dynamic batch: the one exporter `models import-facenet` and
`train` share (PyTorch is an extra; callers hold a model, so it is installed when this runs)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

OPSET = 17


def export_onnx(model: Any, size: int, onnx_path: Path) -> None:
    """``model`` (NCHW float32, ``size`` x ``size`` in; one embedding out) as ONNX, input "input", output
    "embedding", batch dynamic. The caller's model keeps its mode and device: training goes on with it."""
    import torch

    model = copy.deepcopy(model).eval().cpu()
    dummy = torch.zeros(2, 3, size, size)
    # The TorchScript exporter on purpose: the dynamo one needs onnxscript, and these plain CNNs trace
    # exactly (both callers check parity with ONNX Runtime). Its deprecation notice is not for our users.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (dummy,), str(onnx_path), input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
