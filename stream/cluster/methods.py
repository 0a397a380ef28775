"""Grouping embeddings by identity under a distance threshold, in numpy.

Two methods, both given a full (N, N) distance matrix (N = saved tracks, hundreds to a few
thousand, so a dense matrix is affordable; no scipy dependency):

- ``agglomerative``: complete (or average) linkage, merging while the closest pair of clusters is
  within the threshold. Both stop a chain of near-threshold pairs from joining two people (single
  linkage's weakness); complete linkage, every pair within the threshold, is the stricter. On the
  Hamilton clip's unknown tracks it kept every real person apart at the model's threshold where
  average linkage joined two (tools/cluster_purity.py; figures in README "Unknown faces").
- ``chinese_whispers`` (Biggs 2006, as in dlib): label propagation on the graph of pairs within the
  threshold, each node taking the label with the most edge weight among its neighbours.
"""

from __future__ import annotations

import numpy as np

METHODS = ("agglomerative", "chinese-whispers")
LINKAGES = ("complete", "average")


def agglomerative(dist: np.ndarray, threshold: float, linkage: str = "complete") -> np.ndarray:
    """(N,) cluster labels 0..K-1, numbered by first member. O(N^3) worst case, fine to ~2000."""
    n = len(dist)
    if n == 0:
        return np.zeros(0, int)
    d = np.array(dist, np.float64)
    np.fill_diagonal(d, np.inf)
    size = np.ones(n)
    alive = np.ones(n, bool)
    members: list[list[int]] = [[i] for i in range(n)]
    while alive.sum() > 1:
        flat = int(np.argmin(d))
        i, j = divmod(flat, n)
        if d[i, j] > threshold:
            break
        # Lance-Williams update of cluster i (now i+j) against every other cluster
        if linkage == "average":
            row = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])
        elif linkage == "complete":
            row = np.maximum(d[i], d[j])
        else:
            raise ValueError(f"unknown linkage {linkage!r}")
        d[i, :] = row
        d[:, i] = row
        d[i, i] = np.inf
        d[j, :] = np.inf
        d[:, j] = np.inf
        size[i] += size[j]
        alive[j] = False
        members[i].extend(members[j])
        members[j] = []
    return _relabel([members[i] for i in np.flatnonzero(alive)], n)


def chinese_whispers(dist: np.ndarray, threshold: float, iterations: int = 50, seed: int = 0) -> np.ndarray:
    """(N,) cluster labels. Edge weight 1 - d/threshold, so near pairs pull harder than borderline ones."""
    n = len(dist)
    if n == 0:
        return np.zeros(0, int)
    d = np.asarray(dist, np.float64)
    weights = np.where(d <= threshold, 1.0 - d / threshold + 1e-6, 0.0)
    np.fill_diagonal(weights, 0.0)
    labels = np.arange(n)
    rng = np.random.default_rng(seed)  # seeded: the same folder clusters the same way every time
    neighbours = [np.flatnonzero(weights[i]) for i in range(n)]
    for _ in range(iterations):
        changed = False
        for i in rng.permutation(n):
            nb = neighbours[i]
            if not len(nb):
                continue
            votes = np.bincount(labels[nb], weights=weights[i, nb], minlength=n)
            best = int(np.argmax(votes))
            if best != labels[i]:
                labels[i] = best
                changed = True
        if not changed:
            break
    return _relabel([list(np.flatnonzero(labels == lab)) for lab in np.unique(labels)], n)


def cluster(dist: np.ndarray, threshold: float, method: str = "agglomerative", linkage: str = "complete") -> np.ndarray:
    if method == "agglomerative":
        return agglomerative(dist, threshold, linkage)
    if method == "chinese-whispers":
        return chinese_whispers(dist, threshold)
    raise ValueError(f"unknown method {method!r}")


def _relabel(groups: list[list[int]], n: int) -> np.ndarray:
    labels = np.empty(n, int)
    for k, group in enumerate(sorted(groups, key=min)):
        labels[group] = k
    return labels


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of items whose cluster's majority true label is their own."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    if not len(labels):
        return 1.0
    right = 0
    for lab in np.unique(labels):
        _, counts = np.unique(truth[labels == lab], return_counts=True)
        right += counts.max()
    return right / len(labels)


def clusters_per_person(labels: np.ndarray, truth: np.ndarray) -> float:
    """Mean number of clusters each true identity is spread over (1.0 = no person split)."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    people = np.unique(truth)
    return float(np.mean([len(np.unique(labels[truth == p])) for p in people])) if len(people) else 1.0
