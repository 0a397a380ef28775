from __future__ import annotations

import multiprocessing as mp

import pytest

from stream.pipeline.runner import single_threaded_math_in_workers


def _child_threads(out) -> None:
    import os

    out.put({name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})


@pytest.mark.slow
def test_spawned_workers_start_with_one_blas_thread_unless_the_user_chose(monkeypatch):
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")  # a user's own setting wins
    single_threaded_math_in_workers()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_child_threads, args=(out,))
    child.start()
    got = out.get(timeout=60)
    child.join(timeout=30)
    assert got == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "4"}
