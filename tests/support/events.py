"""Reading a run's ``--events-out`` file while the run may still be writing it."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


def read_events(path: Path) -> list[dict]:
    """Every complete event line so far ([] before the file exists)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # the last line may be half written
            out.append(json.loads(line))
    return out
