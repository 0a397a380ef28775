"""Held-out verification each epoch: balanced same/different pairs, scored by the 10-fold protocol.

The pairs are built here (for ``--from-tracks``, only *proven* different pairs, tracks seen in one
frame together, are negatives); the scoring is ``stream.evaluate.protocol.evaluate``, the same
10-fold LFW protocol as `facestream eval`: each fold's threshold is chosen on the other nine, so
the accuracy is not flattered by choosing the threshold on the pairs it is scored on. The
reported ``threshold`` is the protocol's overall one (chosen on all held-out pairs): the one the
manifest gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.evaluate import protocol
from stream.models.manifest import distance_matrix

FOLDS = 10


@dataclass(frozen=True)
class Verification:
    accuracy: float  # mean of the folds' accuracies
    threshold: float  # Euclidean distance: same person when distance <= threshold
    accuracy_se: float  # standard error of the mean over the folds (LFW's S_E)
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


def fold_ids(same: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per pair, stratified: same and different pairs each dealt round-robin after a
    seeded shuffle, so every fold is balanced like LFW's (300 + 300 per set)."""
    rng = np.random.default_rng([seed, 10])
    out = np.zeros(len(same), np.int64)
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(same == cls))
        out[idx] = np.arange(len(idx)) % folds
    return out


def score(distances: np.ndarray, same: np.ndarray, folds: int = FOLDS, seed: int = 0) -> Verification:
    """The protocol on these pairs; NaN when there are too few pairs for ``folds`` folds."""
    same = np.asarray(same, bool)
    folds = min(folds, int(same.sum()), int((~same).sum()))  # every fold needs a pair of each kind
    if folds < 2:
        return Verification(float("nan"), float("nan"), float("nan"), len(distances))
    result = protocol.evaluate(distances, same, fold_ids(same, folds, seed))
    return Verification(result.accuracy, result.threshold, result.accuracy_se, result.pairs)


def verify(embeddings: np.ndarray, labels: np.ndarray, negatives: np.ndarray | None = None,
           max_pairs: int = 6000, seed: int = 0) -> Verification:
    pairs, same = heldout_pairs(labels, negatives, max_pairs, seed)
    dist = distance_matrix(embeddings, embeddings, "euclidean")
    return score(dist[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.zeros(0), same, seed=seed)
