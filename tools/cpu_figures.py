"""CPU per frame of every pipeline process, from a run summary's ``cpu_s`` (all incarnations of each).

Used by the benchmark tools: CPU milliseconds per processed frame says what each stage costs
whether the run was bound by the source (live, real time) or by the machine (a file).
"""

from __future__ import annotations

import re


def _role(name: str) -> str:
    # Older summaries named processes by their log title ("reader:demo", "detect-0" by heartbeat slot).
    return re.split(r"[-:]", name, maxsplit=1)[0]


def cpu_ms_per_frame(summary: dict) -> dict[str, float]:
    """{reader, detect, embed, publish, main, all}: CPU ms per frame the run published."""
    frames = max(int(summary.get("frames") or 0), 1)
    out: dict[str, float] = {}
    for name, seconds in (summary.get("cpu_s") or {}).items():
        role = _role(name)
        out[role] = out.get(role, 0.0) + seconds
    out = {role: round(1e3 * seconds / frames, 2) for role, seconds in sorted(out.items())}
    out["all"] = round(sum(out.values()), 2)
    return out


def format_cpu(summary: dict, wall_s: float | None = None) -> str:
    per_frame = cpu_ms_per_frame(summary)
    text = "CPU ms/frame: " + "  ".join(f"{role} {ms:.2f}" for role, ms in per_frame.items())
    if wall_s:
        share = {role: 100 * seconds / wall_s for role, seconds in (summary.get("cpu_s") or {}).items()}
        text += "\nCPU % of one core: " + "  ".join(f"{name} {pct:.0f}" for name, pct in sorted(share.items()))
    return text
