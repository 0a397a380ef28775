"""Small accumulators for the run summary and heartbeats."""

from __future__ import annotations

from collections import deque

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
