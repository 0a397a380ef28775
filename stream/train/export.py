"""A trained backbone -> ONNX (dynamic batch) + manifest -> the model store.

The exporter `models import-facenet` uses (``models.torch_export``, parity checked with ONNX Runtime),
with the input size from the backbone rather than FaceNet's fixed 160. The manifest's threshold is the best
held-out threshold of the last epoch.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import ModelError
from stream.models.facenet import FACENET_THRESHOLD, PARITY_ATOL
from stream.models.manifest import AlignmentTemplate, InputSpec, ModelManifest, sha256_file
from stream.models.store import InstalledModel, ModelStore
from stream.models.torch_export import export_onnx
from stream.train.backbones import BackboneSpec
from stream.train.deps import require_torch

log = logging.getLogger(__name__)


def onnx_parity(model: Any, onnx_path: Path, inputs: np.ndarray) -> float:
    """Max abs difference between the eval-mode torch model and ONNX Runtime on ``inputs`` (NCHW float32)."""
    import onnxruntime as ort

    torch = require_torch()
    model = copy.deepcopy(model).eval().cpu()
    with torch.no_grad():
        ref = model(torch.from_numpy(inputs)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["embedding"], {"input": inputs})
    return float(np.abs(out - ref).max())


def manifest_for(name: str, spec: BackboneSpec, onnx_path: Path, threshold: float, source: str) -> ModelManifest:
    size = spec.size
    base = spec.base
    if not math.isfinite(threshold) or threshold <= 0:
        threshold = fallback_threshold(base)
        log.warning("no usable held-out threshold (too few held-out faces per identity); the manifest gets "
                    "%.3f (%s); calibrate it with `facestream eval DIR --save-threshold`", threshold,
                    "the base model's, as a euclidean distance" if base is not None and base.output_normalized
                    else "FaceNet's default")
    # Fine-tuned from an installed model: its preprocessing and template, unchanged (the crops were
    # made and normalised that way); the output is now L2-normalised (backbones.normalized_output),
    # so metric euclidean on unit vectors with the held-out threshold, not the base model's.
    in_spec = base.input.model_copy(update={"name": "input"}) if base is not None else InputSpec(
        name="input", width=size, height=size, channel_order="RGB", mean=(spec.mean,) * 3, std=(spec.std,) * 3)
    template = base.alignment if base is not None else AlignmentTemplate(width=size, height=size,
                                                                         points=spec.template)
    what = f"{base.name} fine-tuned" if base is not None else f"{spec.name} trained"
    return ModelManifest(
        name=name,
        description=f"{what} by `facestream train` ({spec.embedding_size}-D, L2-normalised)",
        source=source,
        sha256=sha256_file(onnx_path),
        input=in_spec,
        output_name="embedding",
        embedding_size=spec.embedding_size,
        output_normalized=True,
        metric="euclidean",
        threshold=max(round(float(threshold), 4), 1e-4),  # the manifest needs > 0
        alignment=template,
        precision="fp32",
    )


def fallback_threshold(base: ModelManifest | None) -> float:
    """The base model's threshold in the fine-tuned model's space (euclidean on unit vectors) when it has
    a unit output: cosine distance t is euclidean sqrt(2 t) there. Else FaceNet's default."""
    if base is None or not base.output_normalized:
        return FACENET_THRESHOLD
    return math.sqrt(2.0 * base.threshold) if base.metric == "cosine" else base.threshold


def export_to_store(model: Any, spec: BackboneSpec, name: str, threshold: float, source: str,
                    store: ModelStore | None = None) -> tuple[InstalledModel, float]:
    """Export, check parity on random input (raises above ``PARITY_ATOL``), install; returns the diff too."""
    store = store or ModelStore()
    with tempfile.TemporaryDirectory(prefix="facestream-train-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, spec.size, onnx_path)
        x = np.random.default_rng(0).normal(size=(3, 3, spec.size, spec.size)).astype(np.float32)
        if spec.base is not None:  # inputs on the base model's scale ((x - mean) / std is ~[-0.5, 0.5] for dlib)
            x *= np.float32(127.5 / spec.base.input.std[0])
        diff = onnx_parity(model, onnx_path, x)
        if diff > PARITY_ATOL:
            raise ModelError(f"{name}: exported ONNX differs from PyTorch by {diff:.2e} (> {PARITY_ATOL})")
        return store.install(manifest_for(name, spec, onnx_path, threshold, source), onnx_path), diff
