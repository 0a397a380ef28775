"""Start, watch, restart and stop the pipeline's processes.

Start-up is a flat list (consumers first, so nothing produces into a void); shutdown asks every
process to drain via the stop event and then walks the same list reversed (producers first).
A process that dies is restarted from its spec, at most ``max_restarts`` times per window; a
process whose heartbeat goes stale is killed and restarted. A process that may not be restarted
(a file reader would start the file again) is given up with its ``on_give_up`` hook, which lets
the rest of the pipeline finish cleanly.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import connection
from typing import Any

from stream.pipeline.proc_stat import cpu_seconds_in, stat_fields
from stream.pipeline.process import FATAL_EXIT

log = logging.getLogger(__name__)


class PipelineFailed(RuntimeError):
    """A process kept dying; the message says which and why."""


@dataclass
class ProcessSpec:
    name: str
    target: Callable[..., None]
    args: tuple
    heartbeat_index: int
    restartable: bool = True
    on_give_up: Callable[[str], None] | None = None
    watch_stall: Callable[[], bool] = field(default=lambda: True)  # e.g. not while a model loads


@dataclass
class _Running:
    spec: ProcessSpec
    process: Any
    restarts: deque = field(default_factory=deque)
    done: bool = False
    reaped: bool = False  # this incarnation has been joined (and its CPU time counted)


class Supervisor:
    def __init__(self, ctx: Any, shared: Any, *, max_restarts: int, restart_window_s: float,
                 stall_timeout_s: float, incarnations: Any = None) -> None:
        self.ctx = ctx
        self.shared = shared
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.stall_timeout_s = stall_timeout_s
        self.running: list[_Running] = []
        self.restart_count = 0
        self.restarts: dict[str, int] = defaultdict(int)
        #: CPU seconds (user + system) of every process that has exited, by name: a killed worker
        #: cannot report its own, so it is read from the kernel before the process is reaped.
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.incarnations = incarnations  # shared Array('q') by heartbeat index, read by the workers

    def start(self, spec: ProcessSpec) -> None:
        entry = _Running(spec, self._spawn(spec))
        self.running.append(entry)

    def _spawn(self, spec: ProcessSpec) -> Any:
        self.shared.heartbeats[spec.heartbeat_index] = time.time()
        if self.incarnations is not None:
            self.incarnations[spec.heartbeat_index] += 1
        process = self.ctx.Process(target=spec.target, args=(*spec.args, self.shared), name=spec.name, daemon=True)
        process.start()
        log.info("started %s (pid %d)", spec.name, process.pid)
        return process

    def is_done(self, name: str) -> bool:
        return any(r.done for r in self.running if r.spec.name == name)

    def wait(self, timeout_s: float) -> None:
        """Until one of the processes exits, or ``timeout_s`` passes: a death is seen at once, and an
        idle run's supervision wakes a few times a second, not ten."""
        sentinels = self._sentinels()
        if sentinels:
            connection.wait(sentinels, timeout_s)
        else:
            time.sleep(timeout_s)

    def _sentinels(self) -> list[int]:
        return [r.process.sentinel for r in self.running if not r.done]

    def poll(self) -> None:
        """Restart dead or stuck processes; raise PipelineFailed when one keeps failing."""
        stopping = self.shared.stop.is_set()
        now = time.time()
        # One wait for all: polled ten times a second, a wait per process was most of an idle run's
        # own CPU (a selector made and closed for each).
        exited = set(connection.wait(self._sentinels(), 0))
        for entry in self.running:
            if entry.done:
                continue
            proc = entry.process
            if proc.sentinel in exited:
                self._reap(entry)
                if proc.exitcode == 0:
                    entry.done = True
                    continue
                if proc.exitcode == FATAL_EXIT:
                    raise PipelineFailed(self._fatal_message(entry.spec.name))
                reason = f"exited with code {proc.exitcode}"
            elif (not stopping and entry.spec.watch_stall()
                  and now - self.shared.heartbeats[entry.spec.heartbeat_index] > self.stall_timeout_s):
                reason = f"no heartbeat for {self.stall_timeout_s:.0f} s"
                proc.kill()
                connection.wait([proc.sentinel], 5)
                self._reap(entry)
            else:
                continue
            self._recover(entry, reason, stopping)

    def _fatal_message(self, name: str) -> str:
        try:
            return self.shared.errors.get(timeout=1)
        except queue.Empty:
            return f"{name} failed (see the log above)"

    def _recover(self, entry: _Running, reason: str, stopping: bool) -> None:
        name = entry.spec.name
        if stopping or not entry.spec.restartable:
            log.error("%s %s; not restarting", name, reason)
            entry.done = True
            if entry.spec.on_give_up is not None:
                entry.spec.on_give_up(reason)
            return
        now = time.monotonic()
        while entry.restarts and now - entry.restarts[0] > self.restart_window_s:
            entry.restarts.popleft()
        if len(entry.restarts) >= self.max_restarts:
            raise PipelineFailed(f"{name} {reason}, after {len(entry.restarts)} restarts in "
                                 f"{self.restart_window_s:.0f} s; giving up")
        entry.restarts.append(now)
        self.restart_count += 1
        self.restarts[name] += 1
        log.warning("%s %s; restarting (restart %d)", name, reason, len(entry.restarts))
        entry.process = self._spawn(entry.spec)
        entry.reaped = False

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Ask everything to drain, wait (producers first), then terminate stragglers."""
        self.shared.stop.set()
        deadline = time.monotonic() + timeout_s
        for entry in reversed(self.running):
            if connection.wait([entry.process.sentinel], max(0.0, deadline - time.monotonic())):
                self._reap(entry)
        for entry in reversed(self.running):
            if not entry.reaped:  # workers ignore SIGTERM (see process.init_process)
                log.warning("%s did not stop in time; killing it", entry.spec.name)
                entry.process.kill()
                connection.wait([entry.process.sentinel], 2)
                self._reap(entry)

    def _reap(self, entry: _Running) -> None:
        """Join an exited process, first taking its CPU time from /proc while it is a zombie."""
        if entry.reaped:
            return
        entry.reaped = True
        self.cpu_s[entry.spec.name] += _cpu_seconds_of_exited(entry.process.pid)
        entry.process.join(1)


def _cpu_seconds_of_exited(pid: int) -> float:
    """utime + stime of a child that has exited but not been reaped (all its threads); 0 off Linux."""
    for _ in range(50):  # its pipe closes a moment before the kernel has finished the exit
        fields = stat_fields(pid)
        if fields is None:
            return 0.0
        if fields[0] in ("Z", "X"):
            break
        time.sleep(0.002)
    return cpu_seconds_in(fields)
