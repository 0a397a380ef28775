"""A plain network behind the engine abstraction: named batched inputs in, its outputs out.

The embedder's ``Engine`` knows a model manifest (crops, preprocessing, one embedding). A
detector's network needs less: a batch of one input tensor, the network's outputs as arrays.
``select.create_network`` runs it on ONNX Runtime (CPU) or TensorRT (GPU), as ``create_engine`` does a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class NetworkSpec:
    """One ONNX network with a batch axis first on its single input."""

    name: str  # names the TensorRT engine file: "blazeface-full"
    onnx_path: Path
    input_name: str
    sample_shape: tuple[int, ...]  # one input item, without the batch axis: (192, 192, 3)
    input_dtype: str  # numpy dtype name of the input: "uint8"
    output_names: tuple[str, ...]
    _sha256: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """The ONNX file's digest: a TensorRT engine built from another file is stale."""
        if not self._sha256:
            self._sha256.append(hashlib.sha256(Path(self.onnx_path).read_bytes()).hexdigest())
        return self._sha256[0]


class Network(Protocol):
    backend: str

    def load(self) -> Network: ...

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The outputs (``spec.output_names`` order) for a batch of inputs (N, *sample_shape)."""

    def close(self) -> None: ...
