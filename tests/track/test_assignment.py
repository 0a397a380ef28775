"""The tracker's own assignment solver against scipy's, on many random and degenerate matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from stream.track.assignment import min_cost_assignment


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 5), (5, 3), (8, 8), (16, 12), (12, 16), (30, 30)])
def test_same_total_cost_as_scipy(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(40):
        cost = rng.uniform(-1, 1, shape)
        if trial % 4 == 0:  # IoU-like: mostly zeros, ties everywhere
            cost = -np.where(rng.random(shape) < 0.7, 0.0, rng.random(shape)).round(1)
        rows, cols = min_cost_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        assert len(rows) == len(ref_rows) == min(shape)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert (np.diff(rows) > 0).all()
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum(), abs=1e-9)


def test_empty_and_bad_input():
    rows, cols = min_cost_assignment(np.zeros((0, 3)))
    assert len(rows) == len(cols) == 0
    with pytest.raises(ValueError, match="finite"):
        min_cost_assignment(np.array([[np.inf, 0.0], [0.0, 1.0]]))
