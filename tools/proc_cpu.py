"""CPU seconds of running processes from /proc, for the live benchmarks (a process tree measured over a
window while it runs, where a run summary's ``cpu_s`` only comes at the end)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stream.pipeline.proc_stat import cpu_seconds_in, stat_fields


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far; None once it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else cpu_seconds_in(fields)


def process_name(pid: int) -> str:
    """/proc/PID/comm (the pipeline names its workers ``fs-detect``...), or the pid once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return str(pid)


def family(roots: Iterable[int]) -> list[int]:
    """``roots`` and all their descendants, sorted."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += [child for child, parent in parents.items() if parent == pid and child not in found]
    return sorted(found)
