"""The supervisor with real spawned processes."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from stream.pipeline.process import Shared
from stream.pipeline.supervisor import PipelineFailed, ProcessSpec, Supervisor
from tests.pipeline import targets


@pytest.fixture
def ctx():
    return mp.get_context("spawn")


def make(ctx, **kw) -> tuple[Supervisor, Shared]:
    shared = Shared(stop=ctx.Event(), heartbeats=ctx.Array("d", 4), errors=ctx.Queue())
    opts = {"max_restarts": 2, "restart_window_s": 60, "stall_timeout_s": 30} | kw
    return Supervisor(ctx, shared, **opts), shared


def run_until(sup: Supervisor, cond, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        sup.poll()
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


@pytest.mark.slow
def test_dead_process_is_restarted_and_counted(ctx, tmp_path):
    sup, _ = make(ctx)
    sup.start(ProcessSpec("worker", targets.crash_once, (str(tmp_path / "flag"),), 0))
    run_until(sup, lambda: sup.is_done("worker"))
    assert sup.restart_count == 1
    sup.shutdown()


def test_fatal_exit_is_not_restarted_and_carries_the_message(ctx):
    sup, _ = make(ctx)
    sup.start(ProcessSpec("embed", targets.fatal, (), 0))
    with pytest.raises(PipelineFailed, match="TensorRT is not installed"):
        run_until(sup, lambda: False)
    assert sup.restart_count == 0
    sup.shutdown()


@pytest.mark.slow
def test_restart_cap_gives_up(ctx):
    sup, _ = make(ctx, max_restarts=2)
    sup.start(ProcessSpec("flaky", targets.always_crash, (), 0))
    with pytest.raises(PipelineFailed, match="flaky exited with code 9, after 2 restarts"):
        run_until(sup, lambda: False)
    sup.shutdown()


@pytest.mark.slow
def test_stalled_process_is_killed_and_restarted(ctx, tmp_path):
    sup, _ = make(ctx, stall_timeout_s=1.0)
    sup.start(ProcessSpec("stuck", targets.hang_once, (str(tmp_path / "flag"),), 0))
    run_until(sup, lambda: sup.is_done("stuck"))
    assert sup.restart_count == 1
    sup.shutdown()


def test_non_restartable_process_runs_its_give_up_hook(ctx):
    sup, _ = make(ctx)
    given_up: list[str] = []
    sup.start(ProcessSpec("reader-x", targets.always_crash, (), 0, restartable=False, on_give_up=given_up.append))
    run_until(sup, lambda: sup.is_done("reader-x"))
    assert given_up == ["exited with code 9"]
    assert sup.restart_count == 0
    sup.shutdown()


@pytest.mark.slow
def test_shutdown_terminates_stragglers(ctx, tmp_path):
    sup, _ = make(ctx)
    sup.start(ProcessSpec("stuck", targets.hang_once, (str(tmp_path / "flag"),), 0))
    time.sleep(0.5)
    t0 = time.monotonic()
    sup.shutdown(timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    assert not sup.running[0].process.is_alive()
