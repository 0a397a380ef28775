"""Finding a test run's processes: every process whose environment holds a marker the test set."""

from __future__ import annotations

from pathlib import Path


def processes_with(marker: str) -> dict[int, str]:
    """pid -> process name (/proc/<pid>/comm) of every process whose environment holds ``marker``."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                out[int(entry.name)] = (entry / "comm").read_text().strip()
        except OSError:
            continue  # gone, or another user's
    return out
