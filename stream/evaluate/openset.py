"""Open-set identification: probes (known people and strangers) against a gallery.

A known probe (its identity is enrolled) is identified when the nearest enrolled embedding is its
identity (``top1``) and, for a deployment, also within the threshold (``identified``); a stranger
is wrongly named when anything lies within the threshold (``strangers_named``), the false
positive identification rate that decides a real deployment's threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class OpenSet:
    threshold: float
    known: int
    strangers: int
    top1: float
    identified: float
    strangers_named: float

    def as_dict(self) -> dict:
        return asdict(self)


def open_set(names: list[str | None], distances: np.ndarray, truth: list[str], enrolled: set[str],
             threshold: float) -> OpenSet:
    """Score gallery matches (``Gallery.match``'s names and distances) of probes with true identities."""
    d = np.asarray(distances, np.float64)
    known = np.array([t in enrolled for t in truth], bool)
    right = np.array([n == t for n, t in zip(names, truth)], bool)
    within = d <= threshold
    def rate(x: np.ndarray) -> float:
        return float(x.mean()) if len(x) else float("nan")
    return OpenSet(threshold=float(threshold), known=int(known.sum()), strangers=int((~known).sum()),
                   top1=rate(right[known]), identified=rate((right & within)[known]),
                   strangers_named=rate(within[~known]))
