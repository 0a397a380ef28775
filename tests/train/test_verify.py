"""Held-out scoring: verify.py's pairs through the 10-fold protocol of stream.evaluate."""

from __future__ import annotations

import math

import numpy as np

from stream.train.verify import fold_ids, score, verify


def test_folds_are_stratified_and_balanced():
    same = np.array([True] * 30 + [False] * 30)
    folds = fold_ids(same, 10, seed=0)
    for k in range(10):
        assert (same[folds == k].sum(), (~same[folds == k]).sum()) == (3, 3)


def test_separable_pairs_score_one_with_a_threshold_between_the_classes():
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 40)
    dist = np.where(same, rng.uniform(0.1, 0.4, 80), rng.uniform(0.8, 1.2, 80))
    check = score(dist, same)
    assert check.accuracy == 1.0 and check.accuracy_se == 0.0 and check.pairs == 80
    assert 0.4 <= check.threshold < 0.8


def test_too_few_pairs_for_two_folds_is_nan_not_an_error():
    check = score(np.array([0.1, 0.9]), np.array([True, False]))
    assert math.isnan(check.accuracy) and check.pairs == 2


def test_verify_uses_only_proven_negatives():
    emb = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 2]]
    labels = np.array([0, 0, 1, 1, 2, 2])
    negatives = np.zeros((6, 6), bool)
    negatives[:2, 2:4] = negatives[2:4, :2] = True  # only tracks 0 and 1 were seen together
    check = verify(emb, labels, negatives)
    assert check.pairs == 6  # 3 same pairs, and 3 of the 4 proven-different ones
