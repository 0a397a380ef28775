"""Pair lists for verification: LFW's ``pairs.txt``, or balanced seeded pairs from any dataset.

A pair is two image paths, whether they show the same person, and the fold (LFW "set") it belongs
to. LFW's format: a first line ``SETS N`` (or just ``N``: one set), then per set N matched lines
``name n1 n2`` followed by N mismatched lines ``name1 n1 name2 n2``; image ``name/name_%04d.jpg``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import FacestreamError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_FOLDS = 10


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def lfw_image(root: Path, name: str, number: str, where: str) -> Path:
    try:
        n = int(number)
    except ValueError:
        raise FacestreamError(f"{where}: image number {number!r} is not an integer") from None
    return root / name / f"{name}_{n:04d}.jpg"


def read_lines(path: Path, what: str) -> list[str]:
    """A protocol's text file (``what``: "pairs file"...) as lines; one-line errors naming it."""
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise FacestreamError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FacestreamError(f"{path}: not a readable {what} ({exc})") from None


def parse_lfw_pairs(path: Path, root: Path) -> list[Pair]:
    """Pairs of LFW's ``pairs.txt``; images resolved under ``root`` (not checked for existence here)."""
    path = Path(path)
    lines = [ln.split() for ln in read_lines(path, "pairs file")]
    if not lines or not lines[0]:
        raise FacestreamError(f"{path}: empty; expected a first line 'SETS PAIRS_PER_CLASS'")
    head = lines[0]
    try:
        sets, per_class = (1, int(head[0])) if len(head) == 1 else (int(head[0]), int(head[1]))
    except ValueError:
        raise FacestreamError(f"{path}: line 1: expected 'SETS PAIRS_PER_CLASS', got {' '.join(head)!r}") from None
    if len(head) > 2 or sets < 1 or per_class < 1:
        raise FacestreamError(f"{path}: line 1: expected 'SETS PAIRS_PER_CLASS', got {' '.join(head)!r}")
    body = [(i + 2, tokens) for i, tokens in enumerate(lines[1:]) if tokens]
    if len(body) != sets * 2 * per_class:
        raise FacestreamError(f"{path}: {len(body)} pair lines; line 1 promises {sets} x 2 x {per_class} = "
                              f"{sets * 2 * per_class}")
    pairs: list[Pair] = []
    for k, (lineno, tokens) in enumerate(body):
        fold, within = divmod(k, 2 * per_class)
        matched = within < per_class
        where = f"{path}: line {lineno}"
        if matched and len(tokens) == 3:
            name, n1, n2 = tokens
            pairs.append(Pair(lfw_image(root, name, n1, where), lfw_image(root, name, n2, where), True, fold))
        elif not matched and len(tokens) == 4:
            name1, n1, name2, n2 = tokens
            pairs.append(Pair(lfw_image(root, name1, n1, where), lfw_image(root, name2, n2, where), False, fold))
        else:
            want = "'name n1 n2' (matched)" if matched else "'name1 n1 name2 n2' (mismatched)"
            raise FacestreamError(f"{where}: expected {want}, got {' '.join(tokens)!r}")
    return pairs


def scan_identities(root: Path) -> dict[str, list[Path]]:
    """``{identity: sorted images}`` of a folder-per-identity dataset (identities without images left out)."""
    root = Path(root)
    if not root.exists():
        raise FacestreamError(f"{root}: not found")
    if not root.is_dir():
        raise FacestreamError(f"{root}: not a directory (expected one sub-folder of images per identity)")
    people: dict[str, list[Path]] = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in person.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            people[person.name] = images
    if not people:
        raise FacestreamError(f"{root}: no per-identity sub-folders with images "
                              f"({', '.join(IMAGE_SUFFIXES)})")
    return people


def generate_pairs(people: dict[str, list[Path]], pairs_per_fold: int = 300, folds: int = DEFAULT_FOLDS,
                   seed: int = 0) -> list[Pair]:
    """Balanced pairs: each fold gets the same number of matched and mismatched pairs, all distinct.

    ``pairs_per_fold`` is per class, as LFW's 300. A dataset with fewer matched pairs than
    ``folds * pairs_per_fold`` gets fewer per fold (logged); the same seed gives the same list.
    """
    if pairs_per_fold < 1:
        raise FacestreamError(f"--pairs-per-fold {pairs_per_fold}: must be at least 1")
    names = sorted(people)
    images = [img for name in names for img in people[name]]
    labels = np.array([i for i, name in enumerate(names) for _ in people[name]])
    start = np.concatenate([[0], np.cumsum([len(people[n]) for n in names])])
    # Every matched pair, enumerated: LFW's largest identity (530 images) makes 140k, fine.
    matched = [np.stack(np.triu_indices(len(people[n]), k=1), 1) + start[i] for i, n in enumerate(names)]
    matched_all = np.concatenate(matched) if matched else np.zeros((0, 2), int)
    cross_total = (len(images) ** 2 - sum(len(v) ** 2 for v in people.values())) // 2
    available = min(len(matched_all), cross_total)
    per_fold = min(pairs_per_fold, available // folds)
    if per_fold < 1:
        raise FacestreamError(f"{len(matched_all)} matched and {cross_total} mismatched pairs possible: need at "
                              f"least {folds} of each (more identities with 2+ images)")
    if per_fold < pairs_per_fold:
        log.warning("only %d matched / %d mismatched pairs possible: %d pairs per class per fold instead of %d",
                    len(matched_all), cross_total, per_fold, pairs_per_fold)
    rng = np.random.default_rng(seed)
    n = per_fold * folds
    same = matched_all[rng.choice(len(matched_all), n, replace=False)]
    diff = _mismatched(labels, n, cross_total, rng)
    pairs: list[Pair] = []
    for fold in range(folds):
        part = slice(fold * per_fold, (fold + 1) * per_fold)
        pairs += [Pair(images[i], images[j], True, fold) for i, j in same[part]]
        pairs += [Pair(images[i], images[j], False, fold) for i, j in diff[part]]
    return pairs


def _mismatched(labels: np.ndarray, n: int, total: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct unordered pairs of images of different identities."""
    if total <= 4 * n or total <= 200_000:
        # Small: enumerate them all and choose, so a nearly exhausted set never loops.
        i, j = np.triu_indices(len(labels), k=1)
        keep = labels[i] != labels[j]
        cross = np.stack([i[keep], j[keep]], 1)
        return cross[rng.choice(len(cross), n, replace=False)]
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n:
        a, b = rng.integers(0, len(labels), 2)
        if labels[a] != labels[b]:
            chosen.add((int(min(a, b)), int(max(a, b))))
    ordered = np.array(sorted(chosen))  # sorted first: the result depends on the seed only
    return ordered[rng.permutation(len(ordered))]
