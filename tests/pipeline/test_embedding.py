"""The embedder's loop without processes: real ONNX Runtime, crops from a dict instead of shared memory.

An engine whose results arrive later (TensorRT on a CUDA stream) is stood in for by the real CPU
engine with its work deferred until ``result()``: that is the only double here.
"""

from __future__ import annotations

import queue

import numpy as np
import pytest

from stream.faces import Faces
from stream.inference.base import ReadyEmbeddings
from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.pipeline.embedding import EmbedLoop
from stream.pipeline.messages import EndOfSource, FacesMsg, FrameMsg, ResultMsg


class Deferred:
    """A pending batch that computes only when asked: the GPU has not finished until result()."""

    def __init__(self, engine: OnnxRuntimeEngine, crops: np.ndarray, log: list) -> None:
        self.engine, self.crops, self.log, self.out = engine, crops, log, None

    def done(self) -> bool:
        return self.out is not None

    def result(self) -> np.ndarray:
        if self.out is None:
            self.log.append(("result", len(self.crops)))
            self.out = self.engine.embed(self.crops)
        return self.out


class AsyncEngine:
    """submit() returns before the work is done, like TensorRTEngine.submit on a GPU."""

    def __init__(self, engine: OnnxRuntimeEngine) -> None:
        self.inner, self.manifest, self.log = engine, engine.manifest, []

    def submit(self, crops: np.ndarray) -> Deferred:
        self.log.append(("submit", len(crops)))
        return Deferred(self.inner, crops, self.log)


class SyncEngine(AsyncEngine):
    def submit(self, crops: np.ndarray) -> ReadyEmbeddings:
        self.log.append(("submit", len(crops)))
        return ReadyEmbeddings(self.inner.embed(crops))


class Recorder(list):
    def put(self, item) -> None:
        self.append(item)


def faces_msg(source: str, index: int, n: int) -> FacesMsg:
    frame = FrameMsg(source, slot=index % 4, index=index, pts=index / 30, capture_ts=0.0, height=360, width=640)
    return FacesMsg(frame, Faces.empty(), np.arange(n))


@pytest.fixture(scope="module")
def cpu_engine(default_model):
    with OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path, max_batch=32) as engine:
        yield engine


@pytest.fixture(scope="module")
def crops(default_model) -> dict[tuple[str, int], np.ndarray]:
    rng = np.random.default_rng(0)
    spec = default_model.manifest.input
    return {(s, i): rng.integers(0, 256, (3, spec.height, spec.width, 3), dtype=np.uint8)
            for s in ("a", "b") for i in range(6)}


def make_loop(engine, crops, out, max_batch=4):
    def crops_for(msg: FacesMsg) -> np.ndarray:
        return crops[(msg.frame.source, msg.frame.index)][: len(msg.embed_rows)]

    return EmbedLoop(engine, {"a", "b"}, crops_for, out, max_batch=max_batch, max_wait_s=0.0, poll_s=0.0)


def feed(items):
    pending = list(items)

    def get(timeout):
        if not pending:
            raise queue.Empty
        return pending.pop(0)

    return get, pending


def arrivals() -> list:
    """Two sources interleaved, frames with 0-3 faces, each source ending."""
    items = []
    for i in range(6):
        items += [faces_msg("a", i, i % 4), faces_msg("b", i, (i + 1) % 3)]
    return [*items, EndOfSource("a", 6), EndOfSource("b", 6)]


@pytest.mark.parametrize("engine_kind", [AsyncEngine, SyncEngine])
def test_every_result_forwarded_in_arrival_order_with_its_own_embeddings(cpu_engine, crops, engine_kind):
    engine, out = engine_kind(cpu_engine), Recorder()
    loop = make_loop(engine, crops, out)
    items = arrivals()
    get, _ = feed(items)
    steps = 0
    while not loop.finished:
        loop.step(get)
        steps += 1
        assert steps < 100
    assert [type(o) for o in out] == [ResultMsg if isinstance(i, FacesMsg) else EndOfSource for i in items]
    for item, result in zip(items, out):
        if isinstance(item, FacesMsg):
            assert result.faces_msg is item
            n = len(item.embed_rows)
            want = cpu_engine.embed(crops[(item.frame.source, item.frame.index)][:n])
            assert result.embeddings.shape == (n, cpu_engine.manifest.embedding_size)
            np.testing.assert_allclose(result.embeddings, want, atol=1e-5)
            assert 0 < result.batch_size <= 4 + 3 or n == 0


def test_next_batch_is_submitted_while_the_engine_runs_the_previous(cpu_engine, crops):
    engine, out = AsyncEngine(cpu_engine), Recorder()
    loop = make_loop(engine, crops, out)
    get, _ = feed([faces_msg("a", 1, 3), faces_msg("b", 1, 3), faces_msg("a", 2, 3)])
    loop.step(get)  # batch 1 (a1 + b1: max batch 4 reached after two frames) submitted, not yet done
    assert engine.log == [("submit", 6)] and out == [] and loop.in_flight is not None
    loop.step(get)  # batch 2 submitted first, then batch 1 read back and forwarded
    assert engine.log == [("submit", 6), ("submit", 3), ("result", 6)]
    assert [r.faces_msg.frame.index for r in out] == [1, 1]
    loop.step(get)  # nothing queued: batch 2 is read back rather than waiting for company
    assert engine.log[-1] == ("result", 3) and len(out) == 3 and loop.in_flight is None


def test_a_synchronous_engine_forwards_each_batch_at_once(cpu_engine, crops):
    engine, out = SyncEngine(cpu_engine), Recorder()
    loop = make_loop(engine, crops, out)
    get, _ = feed([faces_msg("a", 1, 3), faces_msg("b", 1, 3)])
    loop.step(get)
    assert len(out) == 2 and loop.in_flight is None  # the CPU path waits for no next batch
