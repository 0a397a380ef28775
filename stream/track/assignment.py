"""Optimal one-to-one assignment for the small cost matrices of tracking (tracks x faces of a frame).

scipy's ``linear_sum_assignment`` gives the same answer, but importing scipy costs ~0.6 s of CPU in
every process that loads it, paid mid-stream by the detect worker the first time two tracks meet
two faces. A frame holds at most a few dozen faces, so the classic O(n^2 m) shortest augmenting path
method with potentials (Kuhn-Munkres as Jonker and Volgenant arranged it) in plain Python is
well under a millisecond here.
"""

from __future__ import annotations

import numpy as np


def min_cost_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) pairing each row (or each column, whichever are fewer) with a distinct partner,
    minimising the total cost; rows ascending, as scipy's ``linear_sum_assignment`` returns them."""
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"expected a 2-D cost matrix; got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost matrix must be finite")
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if cost.shape[0] > cost.shape[1]:
        cols, rows = min_cost_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    c = cost.tolist()
    inf = float("inf")
    u = [0.0] * (n + 1)  # row potentials (1-based; index 0 is the virtual start)
    v = [0.0] * (m + 1)  # column potentials
    owner = [0] * (m + 1)  # row assigned to each column, 0: none
    way = [0] * (m + 1)  # previous column on the augmenting path
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = owner[j0]
            row = c[i0 - 1]
            ui0 = u[i0]
            delta, j1 = inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = row[j - 1] - ui0 - v[j]
                    if reduced < minv[j]:
                        minv[j], way[j] = reduced, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    pairs = sorted((owner[j] - 1, j - 1) for j in range(1, m + 1) if owner[j])
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)
