"""Process targets for supervisor tests (importable by spawned children)."""

from __future__ import annotations

import time
from pathlib import Path


def crash_once(flag: str, shared) -> None:
    path = Path(flag)
    if not path.exists():
        path.write_text("crashed")
        raise SystemExit(7)
    shared.heartbeats[0] = time.time()


def fatal(shared) -> None:
    shared.errors.put("embed: engine.kind is tensorrt but TensorRT is not installed")
    raise SystemExit(3)


def hang_once(flag: str, shared) -> None:
    path = Path(flag)
    if not path.exists():
        path.write_text("hung")
        time.sleep(60)


def always_crash(shared) -> None:
    raise SystemExit(9)
