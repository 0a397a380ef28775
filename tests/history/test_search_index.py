"""The in-memory track index: exact over held unit rows, and faiss's IVF index agreeing with it."""

from __future__ import annotations

import numpy as np
import pytest

from stream.history.search import block_distances, query_vector, search_blocks, unit_rows
from stream.history.search_index import TrackIndex, faiss_available


def _tracks(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(max(n // 20, 2), dim)))
    return (centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.08, size=(n, dim))).astype(np.float32)


def test_exact_index_answers_as_the_streamed_search():
    embs = _tracks(3000) * 1.4  # the store's means are not unit: the index scales them once
    ids = np.arange(10, 3010, dtype=np.int64)
    index = TrackIndex.from_blocks([(ids[:1000], embs[:1000]), (ids[1000:], embs[1000:])], 32, faiss_from=10**9)
    assert index.kind == "exact" and len(index) == 3000
    rng = np.random.default_rng(3)
    for i in rng.integers(0, 3000, 10):
        q = query_vector(embs[i] + rng.normal(scale=0.05, size=32))
        want = search_blocks(q, [(ids, embs)], 0.5, 20)
        got = index.search(q, 0.5, 20)
        assert [h.id for h in got] == [h.id for h in want]
        assert np.allclose([h.distance for h in got], [h.distance for h in want], atol=1e-5)


def test_rows_added_later_are_found():
    index = TrackIndex(4, faiss_from=10**9)
    index.add(np.array([1]), np.array([[1.0, 0, 0, 0]]))
    q = query_vector(np.array([0.0, 1, 0, 0]))
    assert index.search(q, 0.1, 5) == []
    index.add(np.array([2]), np.array([[0.0, 2, 0, 0]]))
    assert [h.id for h in index.search(q, 0.1, 5)] == [2]
    with pytest.raises(ValueError):
        index.add(np.array([3]), np.zeros((1, 5)))


@pytest.mark.slow
@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu not installed (pip install .[search-index])")
def test_faiss_index_agrees_with_exact_search():
    embs = _tracks(20000, dim=64, seed=1)
    ids = np.arange(20000, dtype=np.int64)
    exact = TrackIndex.from_blocks([(ids, embs)], 64, faiss_from=10**9)
    index = TrackIndex.from_blocks([(ids, embs)], 64, faiss_from=1)
    assert index.kind == "faiss-ivf"
    rng = np.random.default_rng(2)
    recall, top1 = [], []
    for i in rng.integers(0, 20000, 100):
        q = query_vector(embs[i] + rng.normal(scale=0.05, size=64))
        want = [h.id for h in exact.search(q, 2.0, 10)]
        got = [h.id for h in index.search(q, 2.0, 10)]
        recall.append(len(set(want) & set(got)) / 10)
        top1.append(want[0] == got[0])
    assert np.mean(top1) >= 0.99 and np.mean(recall) >= 0.95, (np.mean(top1), np.mean(recall))
    d = block_distances(q, embs[got[:1]])
    assert index.search(q, 2.0, 1)[0].distance == pytest.approx(float(d[0]), abs=1e-4)
