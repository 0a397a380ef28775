"""The miners pick exactly the triplets their definitions allow, on hand-made and constructed distances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stream.train.mining import pair_masks, select_batch_all, select_hard, select_semi_hard, valid_triplets


def sym(n: int, entries: dict[tuple[int, int], float]) -> np.ndarray:
    d = np.full((n, n), 9.0)
    np.fill_diagonal(d, 0.0)
    for (i, j), v in entries.items():
        d[i, j] = d[j, i] = v
    return d


def as_set(triplets: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in t) for t in triplets}


# Two identities of two faces. alpha 0.25 (exact in binary, so the strict bounds are tested exactly).
LABELS = np.array([0, 0, 1, 1])
DIST = sym(4, {(0, 1): 0.5, (0, 2): 0.625, (0, 3): 1.0, (1, 2): 0.375, (1, 3): 0.625, (2, 3): 0.25})


def test_semi_hard_picks_only_negatives_between_d_ap_and_d_ap_plus_alpha():
    # (0,1): d_ap .5 -> n=2 (.625) ok, n=3 (1.0) too far.  (1,0): n=2 .375 is hard, n=3 .625 ok.
    # (2,3): d_ap .25 -> n=1 .375 ok, n=0 .625 too far.    (3,2): n=1 .625, n=0 1.0: none -> skipped.
    got = as_set(select_semi_hard(DIST, LABELS, alpha=0.25))
    assert got == {(0, 1, 2), (1, 0, 3), (2, 3, 1)}


def test_semi_hard_bounds_are_strict_and_the_closest_candidate_wins():
    labels = np.array([0, 0, 1, 2, 3, 4])
    # d_ap = .5: n=2 equal to d_ap (not semi-hard), n=3 at d_ap + alpha exactly (not), n=4 .625 and n=5 .5625 are.
    d = sym(6, {(0, 1): 0.5, (0, 2): 0.5, (0, 3): 0.75, (0, 4): 0.625, (0, 5): 0.5625})
    got = select_semi_hard(d, labels, alpha=0.25)
    assert as_set(got[got[:, 0] == 0]) == {(0, 1, 5)}


def test_semi_hard_with_no_candidate_anywhere_selects_nothing():
    d = sym(4, {(0, 1): 0.1, (2, 3): 0.1, (0, 2): 2.0, (0, 3): 2.0, (1, 2): 2.0, (1, 3): 2.0})
    assert len(select_semi_hard(d, LABELS, alpha=0.2)) == 0


def test_hard_takes_the_farthest_positive_and_the_closest_negative_per_anchor():
    labels = np.array([0, 0, 0, 1, 1])
    d = sym(5, {(0, 1): 0.2, (0, 2): 0.7, (1, 2): 0.3, (3, 4): 0.4,
                (0, 3): 0.9, (0, 4): 0.6, (1, 3): 0.5, (1, 4): 1.5, (2, 3): 1.1, (2, 4): 1.2})
    got = as_set(select_hard(d, labels))
    assert got == {(0, 2, 4), (1, 2, 3), (2, 0, 3), (3, 4, 1), (4, 3, 0)}


def test_hard_skips_anchors_without_a_positive_or_a_negative():
    labels = np.array([0, 0, 1])  # face 2 has no positive
    d = sym(3, {(0, 1): 0.3, (0, 2): 0.5, (1, 2): 0.4})
    assert as_set(select_hard(d, labels)) == {(0, 1, 2), (1, 0, 2)}


def test_batch_all_keeps_exactly_the_valid_triplets_with_positive_loss():
    trip, total = select_batch_all(DIST, LABELS, alpha=0.25)
    # 4 anchor-positive pairs x 2 negatives = 8 valid; loss d_ap - d_an + .25 > 0 for:
    # (0,1,2): .5-.625+.25 > 0; (0,1,3): -.25 no; (1,0,2): .375 yes; (1,0,3): .125 yes;
    # (2,3,0): -.125 no; (2,3,1): .125 yes; (3,2,0): -.5 no; (3,2,1): -.125 no.
    assert total == 8
    assert as_set(trip) == {(0, 1, 2), (1, 0, 2), (1, 0, 3), (2, 3, 1)}


def test_a_zero_loss_triplet_is_not_active_in_batch_all():
    d = sym(4, {(0, 1): 0.5, (0, 2): 0.75, (0, 3): 9.0, (1, 2): 9.0, (1, 3): 9.0, (2, 3): 0.5})
    trip, _ = select_batch_all(d, LABELS, alpha=0.25)  # (0,1,2): .5 - .75 + .25 == 0 exactly
    assert (0, 1, 2) not in as_set(trip)


def test_only_proven_negatives_are_used_when_given():
    labels = np.array([0, 0, 1, 1, 2, 2])
    proven = np.zeros((6, 6), bool)
    proven[np.ix_([0, 1], [2, 3])] = proven[np.ix_([2, 3], [0, 1])] = True  # tracks 0 and 1 co-occurred; 2 never
    d = np.random.default_rng(1).uniform(0.1, 1.0, (6, 6))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    for trip in (select_semi_hard(d, labels, 2.0, proven), select_hard(d, labels, proven),
                 select_batch_all(d, labels, 9.0, proven)[0]):
        assert len(trip)
        assert all(proven[a, n] for a, _, n in trip)
    assert {tuple(t) for t in valid_triplets(labels, proven)} == {
        (a, p, n) for a, p, n in itertools.permutations(range(6), 3)
        if labels[a] == labels[p] and proven[a, n]}


@pytest.mark.parametrize("seed", range(5))
def test_miners_agree_with_the_definitions_on_constructed_embeddings(seed):
    # 4 identities x 3 faces: unit vectors clustered around 4 directions, squared L2 distances.
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 8))
    emb = np.repeat(centres, 3, axis=0) + rng.normal(0, 0.6, (12, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.repeat(np.arange(4), 3)
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    alpha = 0.2
    positive, negative = pair_masks(labels)
    allowed_semi = {(a, p, n) for a, p in zip(*np.nonzero(positive), strict=True) for n in np.flatnonzero(negative[a])
                    if d[a, p] < d[a, n] < d[a, p] + alpha}
    semi = as_set(select_semi_hard(d, labels, alpha))
    assert semi <= allowed_semi
    # one per pair that has any candidate, and it is that pair's closest candidate
    pairs = {(a, p) for a, p, _ in allowed_semi}
    assert {(a, p) for a, p, _ in semi} == pairs
    for a, p, n in semi:
        assert d[a, n] == min(d[a, m] for aa, pp, m in allowed_semi if (aa, pp) == (a, p))
    allowed_all = {(a, p, n) for a, p in zip(*np.nonzero(positive), strict=True) for n in np.flatnonzero(negative[a])
                   if d[a, p] - d[a, n] + alpha > 0}
    assert as_set(select_batch_all(d, labels, alpha)[0]) == allowed_all
    hard = as_set(select_hard(d, labels))
    assert hard == {(a, int(np.flatnonzero(positive[a])[np.argmax(d[a, positive[a]])]),
                     int(np.flatnonzero(negative[a])[np.argmin(d[a, negative[a]])])) for a in range(12)}


def test_loss_and_active_fraction_follow_the_formula():
    torch = pytest.importorskip("torch")
    from stream.train.mining import triplet_loss

    # Unit vectors on a circle: faces 0,1 at 0 and 60 deg; faces 2,3 at 90 and 180 deg.
    angles = np.radians([0.0, 60.0, 90.0, 180.0])
    emb = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float64, requires_grad=True)
    d = ((emb.detach()[:, None] - emb.detach()[None]) ** 2).sum(-1).numpy()
    labels = np.array([0, 0, 1, 1])
    trip, total = select_batch_all(d, labels, 0.2)
    result = triplet_loss(emb, labels, "batch-all", 0.2)
    expected = np.mean([d[a, p] - d[a, n] + 0.2 for a, p, n in trip])
    assert float(result.loss.detach()) == pytest.approx(expected)
    assert result.active_fraction == pytest.approx(len(trip) / total)
    result.loss.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    semi = triplet_loss(emb, labels, "semi-hard", 0.2)
    assert semi.active_fraction == pytest.approx(len(select_semi_hard(d, labels, 0.2)) / 4)
    hard = triplet_loss(emb, labels, "hard", 0.2)
    assert len(hard.triplets) == 4
