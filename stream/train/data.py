"""Training faces: detected and aligned once (the `run`/`enroll` path), cached, sampled P x K, augmented.

The cache is ``<workdir>/crops-<key>.npz`` (uint8 BGR crops, int labels, label names, source
paths; no pickled objects), keyed by a hash of the file list (path, size, mtime) and the alignment
template, so editing the dataset or changing backbone re-detects and nothing else does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from stream.errors import FacestreamError
from stream.models.manifest import AlignmentTemplate

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class FaceSet:
    """Aligned crops (N, H, W, 3) uint8 BGR with integer labels and what each label is called.

    ``negatives`` (N, N) bool, when set, says which pairs are known to be different people
    (``--from-tracks``); otherwise any two different labels are.
    """

    crops: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    negatives: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FaceSet:
        neg = None if self.negatives is None else self.negatives[np.ix_(index, index)]
        return FaceSet(self.crops[index], self.labels[index], self.names, neg)


def identity_images(root: Path) -> list[tuple[str, Path]]:
    """(identity, image) for a folder with one sub-folder of photos per person."""
    root = Path(root)
    if not root.exists():
        raise FacestreamError(f"{root}: not found")
    if not root.is_dir():
        raise FacestreamError(f"{root}: not a directory (give a folder with one sub-folder of photos per person)")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    items = [(person.name, img) for person in people
             for img in sorted(person.iterdir()) if img.suffix.lower() in IMAGE_SUFFIXES]
    if len({name for name, _ in items}) < 2:
        raise FacestreamError(f"{root}: need at least two per-person sub-folders with images to train on")
    return items


def cache_key(paths: list[Path], template: AlignmentTemplate) -> str:
    h = hashlib.sha256(template.model_dump_json().encode())
    for path in paths:
        st = path.stat()
        h.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_identity_faces(root: Path, template: AlignmentTemplate, workdir: Path, *, progress: bool = True) -> FaceSet:
    """The dataset's aligned faces, from the cache when the files are unchanged."""
    items = identity_images(root)
    cache = Path(workdir) / f"crops-{cache_key([p for _, p in items], template)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            log.info("%s: %d cached faces from %s", root, len(data["labels"]), cache)
            return FaceSet(data["crops"], data["labels"], data["names"])
    crops, labels, names = detect_and_align(items, template, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, crops=crops, labels=labels, names=names)
    tmp.replace(cache)
    return FaceSet(crops, labels, names)


def detect_and_align(items: list[tuple[str, Path]], template: AlignmentTemplate,
                     *, progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One aligned crop per image: the largest face, as `eval` judges a photo by its main face."""
    from stream.photos import load_chosen_crops

    names = sorted({name for name, _ in items})
    index = {name: i for i, name in enumerate(names)}
    paths = (path for _, path in tqdm(items, desc="detect+align", unit="img", disable=not progress))  # lazy: the bar
    crops, missing = load_chosen_crops(paths, template, "largest")
    lost = set(missing)
    labels = [index[name] for name, path in items if path not in lost]
    if missing:
        log.warning("%d of %d images had no face found and are left out", len(missing), len(items))
    if not len(crops):
        raise FacestreamError(f"{items[0][1].parent.parent}: no face found in any image")
    return crops, np.array(labels, np.int64), np.array(names)


def holdout_split(faces: FaceSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: ``fraction`` of each identity's faces, so every identity stays in
    training (with at least two faces) and the held-out pairs measure these people, not new ones."""
    if not 0 <= fraction < 1:
        raise FacestreamError(f"--holdout {fraction}: must be in [0, 1)")
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in np.unique(faces.labels):
        idx = rng.permutation(np.flatnonzero(faces.labels == label))
        n_held = min(round(fraction * len(idx)), max(0, len(idx) - 2))
        held.extend(idx[:n_held])
        train.extend(idx[n_held:])
    return np.sort(np.array(train, np.int64)), np.sort(np.array(held, np.int64))


class PKSampler:
    """Batches of P identities x K faces (K drawn with replacement when an identity has fewer).

    An epoch is ``ceil(N / (P*K))`` batches. With ``negatives`` (tracks), the P identities are one
    identity plus identities proven different from it (when there are enough), so that the batch
    has negatives at all.
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, seed: int, negatives: np.ndarray | None = None) -> None:
        if p < 2 or k < 2:
            raise FacestreamError(f"--p {p} --k {k}: need at least 2 identities and 2 faces each per batch")
        self.labels = np.asarray(labels)
        self.by_label = {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}
        self.usable = [c for c, idx in self.by_label.items() if len(idx) >= 2]  # a positive needs two faces
        if len(self.usable) < 2:
            raise FacestreamError("training set: need at least two identities with two faces or more")
        self.p, self.k, self.seed = min(p, len(self.usable)), k, seed
        self.conflicts: dict[int, np.ndarray] | None = None
        if negatives is not None:
            self.conflicts = {c: np.array([d for d in self.usable if d != c and
                                           negatives[np.ix_(self.by_label[c], self.by_label[d])].any()])
                              for c in self.usable}

    def __len__(self) -> int:
        return max(1, -(-len(self.labels) // (self.p * self.k)))

    def epoch(self, epoch: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        for _ in range(len(self)):
            chosen = self._identities(rng)
            yield np.concatenate([rng.choice(self.by_label[c], self.k, replace=len(self.by_label[c]) < self.k)
                                  for c in chosen])

    def _identities(self, rng: np.random.Generator) -> list[int]:
        if self.conflicts is None:
            return [int(c) for c in rng.choice(self.usable, self.p, replace=False)]
        with_conflicts = [c for c in self.usable if len(self.conflicts[c])] or self.usable
        first = int(rng.choice(with_conflicts))
        others = rng.permutation(self.conflicts[first])[: self.p - 1].tolist()
        rest = [c for c in rng.permutation(self.usable) if c != first and c not in others]
        return [first, *others, *rest[: self.p - 1 - len(others)]]


def augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal flip (p=0.5), colour jitter (brightness, contrast, saturation +-20%) and a small
    affine (rotation +-8 deg, scale +-5%, shift +-4%), per crop; uint8 in, uint8 out."""
    out = np.empty_like(crops)
    h, w = crops.shape[1:3]
    for i, crop in enumerate(crops):
        img = crop[:, ::-1] if rng.random() < 0.5 else crop
        angle, scale = rng.uniform(-8, 8), rng.uniform(0.95, 1.05)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += rng.uniform(-0.04, 0.04, 2) * (w, h)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        gray = img.mean(axis=2, keepdims=True)
        img = gray + (img - gray) * rng.uniform(0.8, 1.2)  # saturation
        img = img.mean() + (img - img.mean()) * rng.uniform(0.8, 1.2)  # contrast
        img = img * rng.uniform(0.8, 1.2)  # brightness
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out

