"""A process's /proc/PID/stat (Linux): its state, parent and CPU time, for the supervisor's per-worker
CPU figures and the live benchmarks."""

from __future__ import annotations

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name (which may hold spaces and parentheses): [0] the state,
    [1] the parent pid, [11]/[12] user/system clock ticks; None when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds_in(fields: list[str]) -> float:
    """User + system CPU seconds of ``stat_fields``' process (all its threads)."""
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
