"""FaceNet's triplet loss with online mining inside a P x K batch.

``loss = max(0, ||f(a)-f(p)||^2 - ||f(a)-f(n)||^2 + alpha)`` on L2-normalized embeddings, so every
distance below is the *squared* Euclidean distance, as in the paper's formula.

Selection is separate from the loss: ``select_*`` take a distance matrix, the batch's labels and
(optionally) a mask of pairs allowed as negatives, and return index triplets ``(T, 3)`` as
``(anchor, positive, negative)``. Plain numpy, so tests check on constructed distances that exactly
the triplets each definition allows are picked.

Negatives: by default any two faces with different labels. With ``--from-tracks`` two tracks are
only known to be different people when they were seen in the same frame, so the caller passes
``negatives`` (N, N) bool and nothing else is ever used as a negative.

Modes:

- ``semi-hard`` (the paper): for each anchor-positive pair, the negatives with
  ``d(a,p) < d(a,n) < d(a,p) + alpha``. The paper picks one of them at random; we pick the
  *closest* of them (the hardest semi-hard one), which is deterministic and the one with the most
  loss. A pair with no semi-hard negative is skipped: its only candidates are either hard
  (``d(a,n) <= d(a,p)``, which the paper avoids because early on they collapse the model) or
  already satisfied (loss 0). The active fraction is then ``triplets / anchor-positive pairs``.
- ``hard`` (batch-hard, Hermans et al. 2017): per anchor its farthest positive and its closest
  negative; one triplet per anchor that has both. Loss averaged over anchors, active = loss > 0.
- ``batch-all``: every valid (a, p, n) with positive loss; the loss is averaged over those active
  ones (not over all, which would shrink it as the model improves) and the active fraction is
  ``active / valid``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODES = ("semi-hard", "hard", "batch-all")


def pair_masks(labels: np.ndarray, negatives: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) (N, N) bool masks: same label and not itself; allowed as a negative."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    if negatives is None:
        negative = ~same
    else:
        negative = np.asarray(negatives, dtype=bool)
        if negative.shape != same.shape:
            raise ValueError(f"negatives must be {same.shape}, got {negative.shape}")
        negative = negative & ~same  # a face is never its own identity's negative
    return positive, negative


def _check(dist: np.ndarray, labels: np.ndarray) -> np.ndarray:
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1] or dist.shape[0] != len(labels):
        raise ValueError(f"distances must be (N, N) with N = len(labels) = {len(labels)}, got {dist.shape}")
    return dist


def count_anchor_positive_pairs(labels: np.ndarray) -> int:
    return int(pair_masks(labels)[0].sum())


def select_semi_hard(dist: np.ndarray, labels: np.ndarray, alpha: float,
                     negatives: np.ndarray | None = None) -> np.ndarray:
    """For each (a, p): the closest n with d(a,p) < d(a,n) < d(a,p) + alpha; pairs without one are skipped."""
    dist = _check(dist, labels)
    positive, negative = pair_masks(labels, negatives)
    out: list[tuple[int, int, int]] = []
    for a, p in zip(*np.nonzero(positive), strict=True):
        dap = dist[a, p]
        ok = negative[a] & (dist[a] > dap) & (dist[a] < dap + alpha)
        if ok.any():
            candidates = np.flatnonzero(ok)
            out.append((int(a), int(p), int(candidates[np.argmin(dist[a, candidates])])))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def select_hard(dist: np.ndarray, labels: np.ndarray, negatives: np.ndarray | None = None) -> np.ndarray:
    """Per anchor: its farthest positive and its closest negative (anchors lacking either are skipped)."""
    dist = _check(dist, labels)
    positive, negative = pair_masks(labels, negatives)
    out: list[tuple[int, int, int]] = []
    for a in range(len(dist)):
        if positive[a].any() and negative[a].any():
            p = np.flatnonzero(positive[a])[np.argmax(dist[a, positive[a]])]
            n = np.flatnonzero(negative[a])[np.argmin(dist[a, negative[a]])]
            out.append((a, int(p), int(n)))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def valid_triplets(labels: np.ndarray, negatives: np.ndarray | None = None) -> np.ndarray:
    """Every (a, p, n) with p a positive and n an allowed negative of a."""
    positive, negative = pair_masks(labels, negatives)
    valid = positive[:, :, None] & negative[:, None, :]
    return np.argwhere(valid).astype(np.int64).reshape(-1, 3)


def select_batch_all(dist: np.ndarray, labels: np.ndarray, alpha: float,
                     negatives: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The valid triplets with d(a,p) - d(a,n) + alpha > 0, and how many valid triplets there were."""
    dist = _check(dist, labels)
    trip = valid_triplets(labels, negatives)
    a, p, n = trip.T
    active = dist[a, p] - dist[a, n] + alpha > 0
    return trip[active], len(trip)


@dataclass(frozen=True)
class MiningResult:
    loss: Any  # a scalar torch tensor (requires grad when the embeddings do)
    active_fraction: float
    triplets: np.ndarray  # (T, 3) the triplets the loss was computed on


def squared_distances(embeddings: Any) -> Any:
    """(N, N) squared L2 distances of a torch (N, D) batch, clamped at 0 against rounding."""
    sq = (embeddings * embeddings).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T).clamp_min(0.0)


def triplet_loss(embeddings: Any, labels: np.ndarray, mode: str = "semi-hard", alpha: float = 0.2,
                 negatives: np.ndarray | None = None) -> MiningResult:
    """Mine triplets in this batch (on detached distances) and return the loss on them.

    ``embeddings`` are (N, D) torch; they are L2-normalised here, as FaceNet's loss is defined on
    the unit sphere (the margin ``alpha`` means nothing on a raw scale such as dlib's). The
    backbones' outputs already are unit length, for which this changes nothing.
    """
    import torch

    embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)

    if mode not in MODES:
        raise ValueError(f"unknown mining mode {mode!r} (choose from {', '.join(MODES)})")
    d2 = squared_distances(embeddings)
    dist = d2.detach().cpu().numpy()
    if mode == "semi-hard":
        trip = select_semi_hard(dist, labels, alpha, negatives)
        total = count_anchor_positive_pairs(labels)
    elif mode == "hard":
        trip = select_hard(dist, labels, negatives)
        total = len(trip)
    else:
        trip, total = select_batch_all(dist, labels, alpha, negatives)
    if not len(trip):
        zero = embeddings.sum() * 0.0  # keeps the graph: backward() works and changes nothing
        return MiningResult(zero, 0.0, trip)
    index = torch.from_numpy(trip).to(embeddings.device)
    losses = (d2[index[:, 0], index[:, 1]] - d2[index[:, 0], index[:, 2]] + alpha).clamp_min(0.0)
    active = int((losses.detach() > 0).sum())
    loss = losses.mean()  # semi-hard: all active by construction; hard: mean over anchors; batch-all: over active
    return MiningResult(loss, active / total if total else 0.0, trip)
