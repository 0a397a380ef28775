"""The one interface every inference backend implements.

Construct (cheap, no model work), then ``load()`` (build sessions, allocate buffers at the max
batch), then ``warmup()`` (first inference, so a watchdog never mistakes it for a hang). Callers
use ``embed`` (blocking) or ``submit`` (returns while the work runs, where the backend can).
"""

from __future__ import annotations

import abc
import logging
import time
from typing import Protocol

import numpy as np

from stream.models.manifest import ModelManifest
from stream.models.preprocess import to_input_tensor

log = logging.getLogger(__name__)


class PendingEmbeddings(Protocol):
    """Embeddings on their way: ``done()`` without blocking, ``result()`` blocking, float32 (N, D)."""

    def done(self) -> bool: ...
    def result(self) -> np.ndarray: ...


class ReadyEmbeddings:
    """Embeddings already computed: what a synchronous engine's ``submit`` returns."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self._embeddings = embeddings

    def done(self) -> bool:
        return True

    def result(self) -> np.ndarray:
        return self._embeddings


class Engine(abc.ABC):
    #: short backend name for logs and benchmarks: "onnxruntime", "tensorrt"
    backend: str = "abstract"
    #: whether the first call at a large batch costs more than its compute (a GPU's first launch at a
    #: new shape does), so that start-up should warm one. On ONNX Runtime's CPU path it does not
    #: (measured: the first batch of 32 after a batch-1 warm-up is as fast as the next), and a
    #: dummy batch of 32 costs ~0.3 s of CPU while every process is starting.
    warm_large_batches: bool = False

    def __init__(self, manifest: ModelManifest, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        self.manifest = manifest
        self.max_batch = max_batch
        self._loaded = False

    # -- lifecycle -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one preprocessed batch (N <= max_batch) and return float32 (N, D)."""

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Free backend resources (GPU buffers, sessions)."""

    def load(self) -> Engine:
        if not self._loaded:
            self._load()
            self._loaded = True
            log.info(
                "engine %s loaded: model %s (%s), input %dx%d %s, embedding %d, max batch %d",
                self.backend, self.manifest.name, self.manifest.precision, self.manifest.input.width,
                self.manifest.input.height, self.manifest.input.channel_order,
                self.manifest.embedding_size, self.max_batch,
            )
        return self

    def warmup(self, batches: tuple[int, ...] = (1,)) -> float:
        """Run dummy batches so lazy allocation happens now; returns seconds spent."""
        self.load()
        spec = self.manifest.input
        start = time.perf_counter()
        for n in batches:
            self.embed(np.zeros((min(n, self.max_batch), spec.height, spec.width, 3), np.uint8))
        return time.perf_counter() - start

    def close(self) -> None:
        if self._loaded:
            self._release()
            self._loaded = False

    def __enter__(self) -> Engine:
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inference -----------------------------------------------------------------------------
    def embed(self, crops_bgr: np.ndarray) -> np.ndarray:
        """Embed aligned uint8 BGR crops (N, H, W, 3); batches above max_batch are split."""
        self.load()
        crops = np.asarray(crops_bgr)
        n = len(crops)
        out = np.empty((n, self.manifest.embedding_size), dtype=np.float32)
        for start in range(0, n, self.max_batch):
            chunk = crops[start : start + self.max_batch]
            out[start : start + len(chunk)] = self._infer(self.preprocess(chunk))
        return out

    def submit(self, crops_bgr: np.ndarray) -> PendingEmbeddings:
        """Start embedding ``crops_bgr``; the caller may prepare its next batch before ``result()``.

        The default runs to completion here (ONNX Runtime on the CPU has nothing to overlap with:
        the caller's own work would compete for the same cores). The TensorRT engine returns as soon
        as the batch is enqueued on its CUDA stream.
        """
        return ReadyEmbeddings(self.embed(crops_bgr))

    def preprocess(self, crops_bgr: np.ndarray) -> np.ndarray:
        return to_input_tensor(crops_bgr, self.manifest.input)
