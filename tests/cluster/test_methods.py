"""Clustering constructed embeddings: known groups come back, co-occurring tracks stay apart."""

from __future__ import annotations

import numpy as np
import pytest

from stream.cluster.methods import agglomerative, chinese_whispers, cluster, clusters_per_person, purity
from stream.models.manifest import distance_matrix


def _groups(seed: int = 0, people: int = 5, per: int = 6, dim: int = 128, spread: float = 0.15):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.concatenate([c + rng.normal(scale=spread / np.sqrt(dim), size=(per, dim)) for c in centres])
    return points, np.repeat(np.arange(people), per)


@pytest.mark.parametrize("method", ["agglomerative", "chinese-whispers"])
def test_known_groups_come_back(method):
    points, truth = _groups()
    labels = cluster(distance_matrix(points, points, "euclidean"), 0.6, method)
    assert purity(labels, truth) == 1.0
    assert clusters_per_person(labels, truth) == 1.0
    assert len(np.unique(labels)) == 5


@pytest.mark.parametrize("fn", [agglomerative, chinese_whispers])
def test_empty_and_single(fn):
    assert len(fn(np.zeros((0, 0)), 0.5)) == 0
    assert list(fn(np.zeros((1, 1)), 0.5)) == [0]


def test_threshold_zero_keeps_everyone_apart():
    points, _ = _groups(people=2, per=3)
    assert len(np.unique(agglomerative(distance_matrix(points, points, "euclidean"), 1e-9))) == 6


def test_cannot_link_keeps_clusters_apart():
    # three near-identical points, but 0 and 2 were seen together: 1 may join one of them, not both
    d = np.full((3, 3), 0.1)
    np.fill_diagonal(d, 0.0)
    d[0, 2] = d[2, 0] = np.inf
    labels = agglomerative(d, 0.5)
    assert labels[0] != labels[2]


@pytest.mark.parametrize("linkage", ["average", "complete"])
def test_linkage_does_not_chain(linkage):
    # a chain 0-1-2-3 of 0.4 steps: single linkage would join all four
    x = np.array([[0.0], [0.4], [0.8], [1.2]])
    labels = agglomerative(distance_matrix(x, x, "euclidean"), 0.5, linkage)
    assert len(np.unique(labels)) == 2


def test_complete_is_stricter_than_average():
    x = np.array([[0.0], [0.3], [0.65]])
    d = distance_matrix(x, x, "euclidean")
    assert len(np.unique(agglomerative(d, 0.5, "average"))) == 1
    assert len(np.unique(agglomerative(d, 0.5, "complete"))) == 2


def test_purity_and_ratio():
    truth = np.array([0, 0, 1, 1])
    assert purity(np.array([0, 0, 0, 0]), truth) == 0.5
    assert clusters_per_person(np.array([0, 1, 2, 2]), truth) == 1.5
