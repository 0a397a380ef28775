"""Constant-velocity Kalman filter on a box as (cx, cy, area, aspect), as in SORT."""

from __future__ import annotations

import numpy as np

_F = np.eye(7)
_F[0, 4] = _F[1, 5] = _F[2, 6] = 1.0  # position += velocity each frame; aspect has no velocity
_H = np.eye(4, 7)
_Q = np.diag([1.0, 1.0, 1.0, 1e-2, 1e-2, 1e-2, 1e-4])
_R = np.diag([1.0, 1.0, 10.0, 1e-2])


def xyxy_to_z(box: np.ndarray) -> np.ndarray:
    w, h = max(box[2] - box[0], 1e-3), max(box[3] - box[1], 1e-3)
    return np.array([box[0] + w / 2, box[1] + h / 2, w * h, w / h])


def x_to_xyxy(x: np.ndarray) -> np.ndarray:
    area, aspect = max(float(x[2]), 1e-3), max(float(x[3]), 1e-3)
    w = np.sqrt(area * aspect)
    h = area / w
    return np.array([x[0] - w / 2, x[1] - h / 2, x[0] + w / 2, x[1] + h / 2], dtype=np.float32)


class BoxKalman:
    def __init__(self, box: np.ndarray) -> None:
        self.x = np.zeros(7)
        self.x[:4] = xyxy_to_z(box)
        self.P = np.diag([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])  # unknown velocity at first

    def predict(self) -> np.ndarray:
        if self.x[2] + self.x[6] <= 0:  # keep the area positive
            self.x[6] = 0.0
        self.x = _F @ self.x
        self.P = _F @ self.P @ _F.T + _Q
        return x_to_xyxy(self.x)

    def peek(self) -> np.ndarray:
        """Where ``predict`` would put the box, without advancing the filter."""
        x = self.x.copy()
        if x[2] + x[6] <= 0:  # the same guard as predict
            x[6] = 0.0
        return x_to_xyxy(_F @ x)

    def update(self, box: np.ndarray) -> None:
        y = xyxy_to_z(box) - _H @ self.x
        s = _H @ self.P @ _H.T + _R
        k = self.P @ _H.T @ np.linalg.inv(s)
        self.x = self.x + k @ y
        self.P = (np.eye(7) - k @ _H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return x_to_xyxy(self.x)
