"""The FaceNet paper's LFW protocol on one distance per pair, in pure numpy.

Same person when ``distance <= threshold`` (as in matching). For each of the 10 folds the
threshold is chosen on the other 9 (the candidate that maximises accuracy; candidates are the
midpoints between consecutive distinct distances, plus one below the smallest and the largest)
and accuracy is measured on the held-out fold; we report the mean and its standard error,
``std(ddof=1) / sqrt(folds)`` as LFW's protocol defines it (S_E = sigma / sqrt(10), sigma with 9
in the denominator).

VAL@FAR (the paper: VAL(d) = TA(d) / |P_same|, FAR(d) = FA(d) / |P_diff|): on the training folds
the threshold where FAR equals the target is found by linear interpolation of the FAR curve over
the candidate thresholds (``threshold_at_far``); VAL
and the actual FAR are then measured on the held-out fold, and averaged.

ROC AUC is over all pairs (trapezoid over every distinct threshold). The overall ``threshold``
is chosen on all pairs by the same rule as the folds' (the mean of the fold thresholds is given
too, as ``fold_threshold_mean``): it is the one to deploy, calibrated on every pair there is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

FAR_TARGET = 1e-3


@dataclass(frozen=True)
class Verification:
    pairs: int
    accuracy: float
    accuracy_se: float
    val: float
    val_se: float
    far: float
    auc: float
    threshold: float
    fold_threshold_mean: float
    fold_accuracies: list[float] = field(default_factory=list)
    fold_thresholds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _counts(distances: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TA, FA) at each threshold: same / different pairs with distance <= threshold."""
    ta = np.searchsorted(np.sort(distances[same]), thresholds, side="right")
    fa = np.searchsorted(np.sort(distances[~same]), thresholds, side="right")
    return ta, fa


def candidate_thresholds(distances: np.ndarray) -> np.ndarray:
    u = np.unique(distances)
    below = np.nextafter(u[0], -np.inf)  # everything "different"
    return np.concatenate([[below], (u[:-1] + u[1:]) / 2, [u[-1]]])


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy; ties go to the smallest threshold (fewest false accepts)."""
    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    thresholds = candidate_thresholds(distances)
    ta, fa = _counts(distances, same, thresholds)
    correct = ta + ((~same).sum() - fa)
    best = int(np.argmax(correct))
    return float(thresholds[best]), float(correct[best] / len(distances))


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(distances) <= threshold) == np.asarray(same, bool)))


def threshold_at_far(distances: np.ndarray, same: np.ndarray, far_target: float = FAR_TARGET) -> float:
    """The threshold where FAR = ``far_target``, interpolating the FAR curve linearly.

    The curve's points are, for each FAR the candidate thresholds reach, the largest candidate
    with that FAR (so when every FAR above 0 is past the target, as with few pairs, the threshold
    stays in the gap below the first false accept rather than anywhere below it).
    """
    d, s = np.asarray(distances, np.float64), np.asarray(same, bool)
    if s.all():
        return float("nan")
    thresholds = candidate_thresholds(d)
    _, fa = _counts(d, s, thresholds)
    far = fa / (~s).sum()
    levels = np.unique(far)  # starts at 0: the lowest candidate accepts nothing
    largest = np.searchsorted(far, levels, side="right") - 1
    return float(np.interp(far_target, levels, thresholds[largest]))


def val_far(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(VAL, FAR) at ``threshold``; NaN where a class is absent."""
    d, s = np.asarray(distances), np.asarray(same, bool)
    accepted = d <= threshold
    val = accepted[s].mean() if s.any() else np.nan
    far = accepted[~s].mean() if (~s).any() else np.nan
    return float(val), float(far)


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) from (0, 0) to (1, 1) over every distinct threshold."""
    d, s = np.asarray(distances, np.float64), np.asarray(same, bool)
    ta, fa = _counts(d, s, np.unique(d))
    tpr = np.concatenate([[0.0], ta / max(int(s.sum()), 1)])
    fpr = np.concatenate([[0.0], fa / max(int((~s).sum()), 1)])
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the curve by trapezoids (ties between classes count a half, as they should)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def evaluate(distances: np.ndarray, same: np.ndarray, folds: np.ndarray,
             far_target: float = FAR_TARGET) -> Verification:
    """The protocol over the folds given (fold index per pair; LFW: 10 sets)."""
    d = np.asarray(distances, np.float64)
    s = np.asarray(same, bool)
    f = np.asarray(folds)
    if not (len(d) == len(s) == len(f)) or not len(d):
        raise ValueError(f"need as many distances, labels and folds, at least one: {len(d)}, {len(s)}, {len(f)}")
    if not np.isfinite(d).all():
        raise ValueError("distances must be finite")
    fold_ids = np.unique(f)
    if len(fold_ids) < 2:
        raise ValueError("need at least 2 folds")
    accs, thresholds, vals, fars = [], [], [], []
    for k in fold_ids:
        test = f == k
        threshold, _ = best_threshold(d[~test], s[~test])
        thresholds.append(threshold)
        accs.append(accuracy_at(d[test], s[test], threshold))
        val, far = val_far(d[test], s[test], threshold_at_far(d[~test], s[~test], far_target))
        vals.append(val)
        fars.append(far)
    n = len(fold_ids)
    overall, _ = best_threshold(d, s)
    fpr, tpr = roc_curve(d, s)
    return Verification(
        pairs=len(d),
        accuracy=float(np.mean(accs)),
        accuracy_se=float(np.std(accs, ddof=1) / np.sqrt(n)),
        val=float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
        val_se=float(np.nanstd(vals, ddof=1) / np.sqrt(np.isfinite(vals).sum())) if np.isfinite(vals).sum() > 1
        else float("nan"),
        far=float(np.nanmean(fars)) if np.isfinite(fars).any() else float("nan"),
        auc=auc(fpr, tpr),
        threshold=overall,
        fold_threshold_mean=float(np.mean(thresholds)),
        fold_accuracies=[float(a) for a in accs],
        fold_thresholds=[float(t) for t in thresholds],
    )
