"""Embeddings of a dataset's images, one face per image, through ``run``'s detect+align path."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def detect_crops(paths: Sequence[Path], manifest, rule: str) -> tuple[dict[Path, np.ndarray], list[Path]]:
    """Aligned crop per image (the face it is about, per ``rule``), and the images with no face."""
    from stream.align import load_chosen_crops

    paths = list(dict.fromkeys(paths))  # each image once, in order
    crops, missing = load_chosen_crops(paths, manifest.alignment, rule)
    lost = set(missing)
    found = [p for p in paths if p not in lost]
    return dict(zip(found, crops)), missing


def embed_crops(crops: dict[Path, np.ndarray], model, batch: int = 32) -> dict[Path, np.ndarray]:
    """Embed crops with ONNX Runtime on the CPU (as ``embed`` and ``enroll`` do)."""
    from stream.cli.common import cpu_engine

    keys = list(crops)
    out: dict[Path, np.ndarray] = {}
    with cpu_engine(model, max_batch=batch) as engine:
        for start in range(0, len(keys), batch):
            part = keys[start:start + batch]
            emb = engine.embed(np.stack([crops[k] for k in part]))
            out.update(zip(part, np.asarray(emb, np.float32)))
    return out


def alignment_signature(manifest) -> tuple:
    """Models with the same template and input size share crops: detect once for all of them."""
    return (manifest.alignment.model_dump_json(),)
