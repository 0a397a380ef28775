"""The model manifest: every per-model fact in one validated record.

Alignment, preprocessing, batching, matching and gallery compatibility all read these fields;
no other module holds per-model constants.

Landmark names are as seen in the image (viewer's perspective): ``left_eye`` is the eye on the
image's left, i.e. the subject's right eye. This is InsightFace's 5-point convention.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST_SCHEMA_VERSION = 1
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class InputSpec(_Strict):
    """How an aligned crop becomes the network's input tensor."""

    name: str = Field(description="ONNX input tensor name")
    width: int = Field(gt=0, le=1024)
    height: int = Field(gt=0, le=1024)
    channel_order: Literal["RGB", "BGR"] = Field(description="channel order the network expects")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    mean: tuple[float, float, float] = Field(description="per channel, in channel_order, subtracted first")
    std: tuple[float, float, float] = Field(description="per channel, in channel_order, divides after")

    @field_validator("std")
    @classmethod
    def _std_nonzero(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s == 0 for s in v):
            raise ValueError("std must be non-zero")
        return v


class AlignmentTemplate(_Strict):
    """Where the 5 landmarks sit in the model's input crop, in pixels of a width x height crop."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    points: dict[str, tuple[float, float]] = Field(description=f"pixel positions of {', '.join(LANDMARKS)}")

    @field_validator("points")
    @classmethod
    def _all_landmarks(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        missing = [k for k in LANDMARKS if k not in v]
        extra = [k for k in v if k not in LANDMARKS]
        if missing or extra:
            raise ValueError(f"points need exactly {list(LANDMARKS)}; missing {missing}, unknown {extra}")
        return v

    def array(self, names: tuple[str, ...] = LANDMARKS) -> np.ndarray:
        """The named template points as a float32 (K, 2) array."""
        return np.array([self.points[n] for n in names], dtype=np.float32)


class ThresholdCalibration(_Strict):
    """Where a calibrated ``threshold`` came from (``facestream eval --save-threshold``)."""

    dataset: str = Field(description="dataset name (its folder name)")
    pairs: int = Field(gt=0, description="pairs the threshold was chosen on")
    accuracy: float = Field(ge=0, le=1, description="10-fold verification accuracy on that dataset")
    previous_threshold: float = Field(gt=0, description="the threshold it replaced")
    date: str = Field(description="when, ISO 8601 UTC")


class ModelManifest(_Strict):
    """Everything downstream needs to know about one embedding model."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    source: str = Field(description="where the weights came from (package file, URL, checkpoint)")
    source_sha256: str | None = Field(default=None, description="sha256 of the source weights file")
    onnx_file: str = "model.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the ONNX file")
    input: InputSpec
    output_name: str
    embedding_size: int = Field(gt=0, le=4096)
    output_normalized: bool = Field(description="True when the ONNX output is already L2-normalized")
    metric: Literal["euclidean", "cosine"] = Field(
        description="distance used for matching: euclidean on the raw output, or cosine distance (1 - cos)"
    )
    threshold: float = Field(gt=0, description="default match threshold: same person when distance <= it")
    alignment: AlignmentTemplate
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    base_model: str | None = Field(
        default=None, description="for a precision variant, the model whose embedding space it shares"
    )
    max_batch_hint: int = Field(default=64, gt=0, description="a sensible upper batch for engines")
    threshold_calibration: ThresholdCalibration | None = Field(
        default=None, description="set when `threshold` was calibrated on a dataset; None: the model's default"
    )

    @model_validator(mode="after")
    def _template_matches_input(self) -> ModelManifest:
        if (self.alignment.width, self.alignment.height) != (self.input.width, self.input.height):
            raise ValueError(
                f"alignment template is {self.alignment.width}x{self.alignment.height} "
                f"but the input is {self.input.width}x{self.input.height}"
            )
        return self

    @property
    def embedding_space(self) -> str:
        """Embeddings are comparable across models with the same space (a model and its variants)."""
        return self.base_model or self.name

    def distances(self, queries: np.ndarray, references: np.ndarray) -> np.ndarray:
        """Distance matrix (N, M) between embeddings under this model's metric."""
        return distance_matrix(queries, references, self.metric)

    # -- files ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: manifest not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: not a readable JSON manifest ({exc})") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "manifest"
            raise ModelError(f"{path}: invalid manifest field {where}: {first['msg']}") from None

    def dump(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"


def distance_matrix(queries: np.ndarray, references: np.ndarray, metric: str) -> np.ndarray:
    """Pairwise distances (N, M), float32. ``cosine`` is ``1 - cos``; ``euclidean`` is plain L2."""
    q = np.asarray(queries, dtype=np.float32)
    r = np.asarray(references, dtype=np.float32)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise ValueError(f"embeddings must be (N, D) and (M, D); got {q.shape} and {r.shape}")
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        rn = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        return (1.0 - qn @ rn.T).astype(np.float32)
    if metric == "euclidean":
        sq = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * (q @ r.T)
        return np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)
    raise ValueError(f"unknown metric {metric!r}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
