"""The embedder's work: batch crops from every source, run the engine, forward results in order.

With an engine whose ``submit`` returns before the work is done (TensorRT on its CUDA stream), the
next batch is collected and preprocessed into the other buffer set while the GPU runs this one.
A synchronous engine (ONNX Runtime) finishes inside ``submit`` and its results leave at once, so
the CPU path waits for nothing extra.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.inference.base import Engine, PendingEmbeddings
from stream.pipeline.batching import collect_batch
from stream.pipeline.messages import EndOfSource, FacesMsg, ResultMsg

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    items: list[Any]  # FacesMsg and EndOfSource, in arrival order
    total: int  # crops in the batch
    pending: PendingEmbeddings | None  # None when no item had crops
    started: float


def crops_of(item: Any) -> int:
    return len(item.embed_rows) if isinstance(item, FacesMsg) else 0


class EmbedLoop:
    """One engine, many sources: ``step()`` until ``finished``.

    ``crops_for(msg)`` returns the aligned crops of a FacesMsg (from its shared-memory slot) and
    ``out.put`` takes ResultMsg and EndOfSource in the order their frames arrived.
    """

    def __init__(self, engine: Engine, sources: set[str], crops_for: Callable[[FacesMsg], np.ndarray], out: Any,
                 *, max_batch: int, max_wait_s: float, poll_s: float,
                 on_end: Callable[[str], None] | None = None) -> None:
        self.engine, self.crops_for, self.out = engine, crops_for, out
        self.open_sources = set(sources)
        self.on_end = on_end  # told once a source's end has been passed on
        self.max_batch, self.max_wait_s, self.poll_s = max_batch, max_wait_s, poll_s
        self.in_flight: _Batch | None = None

    @property
    def finished(self) -> bool:
        return not self.open_sources and self.in_flight is None

    def step(self, get: Callable[[float], Any]) -> bool:
        """Collect a batch (only what is already queued while another batch runs), submit it, then
        forward the earlier batch: the engine works while the next batch is gathered. False when
        nothing arrived."""
        busy = self.in_flight is not None
        items = collect_batch(get, crops_of, self.max_batch, 0.0 if busy else self.max_wait_s,
                              0.0 if busy else self.poll_s)
        batch = self._submit(items) if items else None
        if self.in_flight is not None:
            self._forward(self.in_flight)
        self.in_flight = batch
        if batch is not None and (batch.pending is None or batch.pending.done()):
            self._forward(batch)
            self.in_flight = None
        return bool(items)

    def end_source(self, msg: EndOfSource) -> None:
        """Pass on a source's end that did not come through the inbox (see ledger.SourceEnds)."""
        if self.in_flight is not None:
            self._forward(self.in_flight)
            self.in_flight = None
        self._pass_end(msg)

    def _pass_end(self, msg: EndOfSource) -> None:
        if msg.source not in self.open_sources:
            return  # a second end of the same source (a worker upstream was killed on its way out)
        self.out.put(msg)
        self.open_sources.discard(msg.source)
        if self.on_end is not None:
            self.on_end(msg.source)

    def _submit(self, items: list[Any]) -> _Batch:
        frames = [item for item in items if isinstance(item, FacesMsg) and len(item.embed_rows)]
        started = time.perf_counter()
        if not frames:
            return _Batch(items, 0, None, started)
        crops = np.concatenate([self.crops_for(f) for f in frames])
        return _Batch(items, len(crops), self.engine.submit(crops), started)

    def _forward(self, batch: _Batch) -> None:
        embeddings = batch.pending.result() if batch.pending is not None else None
        elapsed_ms = (time.perf_counter() - batch.started) * 1e3
        dim = self.engine.manifest.embedding_size
        offset = 0
        for item in batch.items:
            if isinstance(item, FacesMsg):
                n = len(item.embed_rows)
                rows = embeddings[offset : offset + n] if n else np.zeros((0, dim), np.float32)
                self.out.put(ResultMsg(item, rows, elapsed_ms * n / batch.total if n else 0.0, batch.total))
                offset += n
            elif isinstance(item, EndOfSource):
                self._pass_end(item)
            else:
                self.out.put(item)
