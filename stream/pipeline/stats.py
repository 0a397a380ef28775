"""Small accumulators for the run summary and heartbeats."""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np


class LatencyStats:
    """Frame capture -> result latency; keeps the most recent samples for percentiles."""

    def __init__(self, window: int = 20_000) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def summary(self) -> dict[str, float]:
        if not self._samples:
            return {}
        ms = np.asarray(self._samples) * 1e3
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
                "max": round(float(ms.max()), 1), "n": len(ms)}


class StageTimes:
    """Milliseconds spent per stage, summed over frames."""

    def __init__(self) -> None:
        self._totals: dict[str, float] = defaultdict(float)
        self._frames = 0

    def add(self, **stage_ms: float) -> None:
        for stage, ms in stage_ms.items():
            self._totals[stage] += ms
        self._frames += 1

    def per_frame(self) -> dict[str, float]:
        if not self._frames:
            return {}
        return {stage: round(total / self._frames, 2) for stage, total in self._totals.items()}
