"""What every pipeline process shares: the stop event, heartbeats, and one-line fatal errors."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from stream.errors import FacestreamError

FATAL_EXIT = 3  # a user-fixable error (bad model, engine unavailable): restarting cannot help
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Shared:
    """Cross-process handles every worker gets (multiprocessing objects from the spawn context)."""

    stop: Any  # Event: drain and stop
    heartbeats: Any  # Array('d'): per-process last-alive wall clock, by worker index
    errors: Any  # Channel[str]: a worker's one-line fatal error, read by the supervisor
    ledger: Any = None  # stream.pipeline.ledger.RunLedger: what outlives a killed worker
    log_level: str = "WARNING"
    supervisor_pid: int | None = None  # workers exit when this process is gone


def init_process(shared: Shared, index: int, title: str) -> None:
    """First thing in every worker: signals, logging, thread limits, first heartbeat."""
    # Ctrl-C, and a SIGTERM sent to the whole process group (timeout(1), systemd, kill -- -PGID),
    # reach every worker at once: only the supervisor reacts, and the workers drain on its stop
    # event. It ends stragglers with SIGKILL; if it dies, so do they (die_with_supervisor).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_supervisor(shared.supervisor_pid)
    logging.basicConfig(
        level=getattr(logging, shared.log_level),
        format=f"%(asctime)s %(levelname)s {title}[%(process)d] %(name)s: %(message)s",
    )
    set_process_name(f"fs-{title.split(':')[0]}")
    beat(shared, index)


def die_with_supervisor(supervisor_pid: int | None) -> None:
    """Have the kernel SIGKILL this worker when the supervisor dies (Linux), so a supervisor killed
    with SIGKILL leaves no orphans; elsewhere a no-op."""
    if supervisor_pid is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor_pid:  # it died before the request took effect
        os._exit(1)


def set_process_name(name: str) -> None:
    """Name the process for ps/top (Linux: /proc/self/comm, 15 characters); best effort."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def incarnation(shared: Shared, index: int) -> int:
    """How many times the process at heartbeat ``index`` has been started, this start included."""
    return int(shared.ledger.incarnations[index]) if shared.ledger is not None else 1


def beat(shared: Shared, index: int) -> None:
    shared.heartbeats[index] = time.time()


class fatal_errors_exit:
    """Turn a FacestreamError in a worker into one line for the supervisor and exit FATAL_EXIT."""

    def __init__(self, shared: Shared, title: str) -> None:
        self.shared = shared
        self.title = title

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, FacestreamError):
            self.shared.errors.put(f"{self.title}: {exc}")
            raise SystemExit(FATAL_EXIT)
        return False
