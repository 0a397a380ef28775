"""Held-out verification each epoch: balanced same/different pairs, the best single threshold.

A minimal stand-in for the 10-fold protocol of `facestream eval` (stream/evaluate/, being built
alongside): the threshold is chosen on the same pairs it is scored on, so the accuracy is
optimistic by a little; it tracks progress between epochs and gives the manifest a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.models.manifest import distance_matrix


@dataclass(frozen=True)
class Verification:
    accuracy: float
    threshold: float  # Euclidean distance: same person when distance <= threshold
    pairs: int


def heldout_pairs(labels: np.ndarray, negatives: np.ndarray | None, max_pairs: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index pairs and same-person flags, as many different as same pairs (seeded)."""
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), 1)
    same = labels[i] == labels[j]
    diff = ~same if negatives is None else (negatives[i, j] & ~same)
    rng = np.random.default_rng(seed)
    n = min(int(same.sum()), int(diff.sum()), max_pairs // 2)
    pos = rng.choice(np.flatnonzero(same), n, replace=False)
    neg = rng.choice(np.flatnonzero(diff), n, replace=False)
    pick = np.concatenate([pos, neg])
    return np.stack([i[pick], j[pick]], 1), np.concatenate([np.ones(n, bool), np.zeros(n, bool)])


def best_threshold(distances: np.ndarray, same: np.ndarray) -> Verification:
    """The threshold (midway between neighbouring distances) with the highest accuracy."""
    if not len(distances):
        return Verification(float("nan"), float("nan"), 0)
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    # Accepting the first k pairs: correct = same among them + different among the rest.
    correct = np.concatenate([[0], np.cumsum(s)]) + np.concatenate([[(~s).sum()], (~s).sum() - np.cumsum(~s)])
    k = int(np.argmax(correct))
    lo = d[k - 1] if k > 0 else 0.0
    hi = d[k] if k < len(d) else d[-1] + 1e-3
    return Verification(float(correct[k] / len(d)), float((lo + hi) / 2), len(d))


def verify(embeddings: np.ndarray, labels: np.ndarray, negatives: np.ndarray | None = None,
           max_pairs: int = 6000, seed: int = 0) -> Verification:
    pairs, same = heldout_pairs(labels, negatives, max_pairs, seed)
    dist = distance_matrix(embeddings, embeddings, "euclidean")
    return best_threshold(dist[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.zeros(0), same)
