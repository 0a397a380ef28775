"""The 10-fold LFW protocol, VAL@FAR and AUC on synthetic distances whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from stream.evaluate.protocol import (
    auc,
    best_threshold,
    evaluate,
    roc_curve,
    threshold_at_far,
)

FOLDS = 10


def _folded(same_per_fold: list[np.ndarray], diff_per_fold: list[np.ndarray]):
    d, s, f = [], [], []
    for k, (same, diff) in enumerate(zip(same_per_fold, diff_per_fold)):
        d += [*same, *diff]
        s += [True] * len(same) + [False] * len(diff)
        f += [k] * (len(same) + len(diff))
    return np.array(d), np.array(s), np.array(f)


def test_separable_pairs_are_all_right_at_the_gap_midpoint() -> None:
    rng = np.random.default_rng(1)
    same = [np.r_[0.4, rng.uniform(0.1, 0.4, 29)] for _ in range(FOLDS)]
    diff = [np.r_[0.8, rng.uniform(0.8, 1.2, 29)] for _ in range(FOLDS)]
    result = evaluate(*_folded(same, diff))
    assert result.accuracy == 1.0 and result.accuracy_se == 0.0
    assert result.threshold == pytest.approx(0.6)  # the only candidate in the gap (0.4, 0.8)
    assert result.fold_thresholds == pytest.approx([0.6] * FOLDS)
    assert result.val == 1.0 and result.far == 0.0
    assert result.auc == 1.0
    assert result.pairs == FOLDS * 60


def test_overlapping_pairs_give_the_known_accuracy_and_standard_error() -> None:
    # Per fold: 9 easy positives at 0.2, one hard at 0.9, ten negatives at 0.8. Best threshold 0.5
    # (midpoint of 0.2 and 0.8): 19/20 right; above 0.9 only 10/20. Fold 0 has a second hard positive.
    same = [np.r_[[0.2] * 9, 0.9] for _ in range(FOLDS)]
    same[0] = np.r_[[0.2] * 8, 0.9, 0.9]
    diff = [np.full(10, 0.8) for _ in range(FOLDS)]
    result = evaluate(*_folded(same, diff))
    expected = np.r_[0.9, [0.95] * 9]
    assert result.fold_accuracies == pytest.approx(expected.tolist())
    assert result.accuracy == pytest.approx(expected.mean())
    assert result.accuracy_se == pytest.approx(expected.std(ddof=1) / np.sqrt(FOLDS))
    assert result.threshold == pytest.approx(0.5)
    assert result.fold_threshold_mean == pytest.approx(0.5)


def test_ties_choose_the_smallest_best_threshold() -> None:
    # Candidates 0.15 and 0.35 are both 3/4 right: the smaller (fewer false accepts) wins.
    threshold, accuracy = best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), np.array([True, False, True, False]))
    assert (threshold, accuracy) == (pytest.approx(0.15), 0.75)


def test_threshold_at_far_interpolates_between_the_far_levels() -> None:
    # 1000 negatives at 0.001..1.000, one positive at 0: FAR 0 up to candidate 0.0005, 1e-3 at 0.0015.
    d = np.r_[0.0, np.arange(1, 1001) / 1000]
    s = np.r_[True, np.zeros(1000, bool)]
    assert threshold_at_far(d, s, 1e-3) == pytest.approx(0.0015)
    assert threshold_at_far(d, s, 0.5e-3) == pytest.approx(0.001)
    assert threshold_at_far(d, s, 2e-3) == pytest.approx(0.0025)


def test_val_at_far_on_the_held_out_folds() -> None:
    # Per fold 100 positives at 0.01..1.00 and 1000 negatives at 0.5001..1.5: on the 9 training folds
    # FAR 1e-3 (9 of 9000 negatives) falls just past 0.5; VAL there = half the positives.
    same = [np.arange(1, 101) / 100 for _ in range(FOLDS)]
    diff = [0.5 + np.arange(1, 1001) / 1000 for _ in range(FOLDS)]
    result = evaluate(*_folded(same, diff))
    assert result.val == pytest.approx(0.5, abs=0.011)
    assert result.far == pytest.approx(1e-3, abs=1e-3)


def test_auc_of_identical_distributions_is_a_half() -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, 20000)
    s = np.arange(20000) % 2 == 0
    assert auc(*roc_curve(d, s)) == pytest.approx(0.5, abs=0.01)
    # all tied: the diagonal exactly
    assert auc(*roc_curve(np.ones(10), np.arange(10) % 2 == 0)) == pytest.approx(0.5)


def test_auc_of_reversed_scores_is_zero_and_curve_runs_corner_to_corner() -> None:
    d = np.r_[np.full(5, 0.9), np.full(5, 0.1)]
    s = np.r_[np.ones(5, bool), np.zeros(5, bool)]
    fpr, tpr = roc_curve(d, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert auc(fpr, tpr) == 0.0


@pytest.mark.parametrize("bad", [
    (np.array([]), np.array([], bool), np.array([])),
    (np.array([0.1, np.nan]), np.array([True, False]), np.array([0, 1])),
    (np.array([0.1, 0.2]), np.array([True, False]), np.array([0, 0])),
])
def test_bad_inputs_raise(bad) -> None:
    with pytest.raises(ValueError):
        evaluate(*bad)
