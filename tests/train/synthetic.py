"""Random-but-structured face crops: each identity a smooth random pattern, each crop it plus noise."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def identity_crops(identities: int, per_identity: int, size: int = 112, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for ident in range(identities):
        base = cv2.resize(rng.integers(0, 256, (6, 6, 3)).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_CUBIC)
        for _ in range(per_identity):
            shift = rng.integers(-3, 4, 2)
            img = np.roll(base, tuple(shift), axis=(0, 1)) + rng.normal(0, 12, base.shape)
            crops.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(ident)
    return np.stack(crops), np.array(labels)


def write_tracks(root: Path, identities: int = 4, per_identity: int = 6, size: int = 112, seed: int = 0) -> Path:
    """``root/cam-<i>/*.png`` + track.json; every track is seen in frame 100, so all are proven different."""
    crops, labels = identity_crops(identities, per_identity, size, seed)
    for ident in range(identities):
        folder = root / f"cam-{ident + 1}"
        folder.mkdir(parents=True)
        for j, crop in enumerate(crops[labels == ident]):
            cv2.imwrite(str(folder / f"{j:03d}.png"), crop)
        frames = [100, *range(ident * 10, ident * 10 + 5)]
        (folder / "track.json").write_text(json.dumps({"frames": frames}))
    return root


def fit_head(modules: list, head, x, y, steps: int, lr: float) -> tuple[list[float], list[float]]:
    """``steps`` of Adam on ``head(modules(x), y)`` (the modules applied in order): each step's loss and
    the head's share of faces not yet won by the margin."""
    import torch

    params = [p for m in (*modules, head) for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    losses, actives = [], []
    for _ in range(steps):
        features = x
        for module in modules:
            features = module(features)
        loss, active = head(features, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        actives.append(float(active))
    return losses, actives
