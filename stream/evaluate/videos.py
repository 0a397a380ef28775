"""Video pairs for the video-level protocol (YouTube Faces; `eval --videos`): which videos, which frames.

Two sources of videos, each a list of frames in time order keyed by a name:

- **YouTube Faces' layout** (its ``frame_images_DB``): ``ROOT/<person>/<video number>/*.jpg``, whole
  frames, the video named ``person/number``. Pairs from YTF's ``splits.txt`` (a header line, then
  ``split, person/n1, person/n2, ..., is_same``; YTF's own has two 0/1 columns after the names, the
  last of which is the label, and ``splits_corrected.txt`` corrects it, so the *last* column is read),
  or generated (balanced, seeded) when there is none.
- **Saved tracks** (``run --save-unknowns DIR``: ``DIR/<source>-<track_id>/crop-<k>.png`` +
  ``track.json``) and a labels file of ``TRACK PERSON`` lines: the crops are already aligned to the
  model that ran, in frame order by ``crop_frames``; pairs generated from the labels. A saved track
  keeps only its best ``keep`` crops (5 by default), so its "first N frames" are those.

The fold of a pair is its split (YTF's 10) or the generator's.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from stream.errors import FacestreamError
from stream.evaluate.pairs import DEFAULT_FOLDS, IMAGE_SUFFIXES, generate_pairs, read_lines

log = logging.getLogger(__name__)

SPLITS_FILE = "splits.txt"
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class VideoPair:
    a: str
    b: str
    same: bool
    fold: int


@dataclass
class VideoSet:
    """Videos (name -> frames in time order), the pairs over them and how they were made."""

    videos: dict[str, list[Path]]
    pairs: list[VideoPair]
    aligned: bool  # frames are aligned crops (saved tracks), not whole frames to detect in
    pairs_from: str
    model_of: dict[str, str] = field(default_factory=dict)  # video -> the model its crops were aligned for


def natural_key(path: Path) -> tuple:
    """Frame order: numbers compared as numbers (``2.jpg`` before ``10.jpg``; YTF's ``0.123.jpg``)."""
    return tuple(int(t) if t.isdigit() else t for t in _NUMBER.split(path.name))


def frames_of(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=natural_key)


def parse_ytf_splits(path: Path) -> list[VideoPair]:
    """Pairs of a YTF ``splits.txt``; folds numbered by the sorted split numbers."""
    path = Path(path)
    lines = read_lines(path, "splits file")
    rows: list[tuple[int, str, str, bool]] = []
    for lineno, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.split(",")]
        if not line.strip():
            continue
        if not rows and not fields[0].isdigit():
            continue  # the header: "split number, first name, second name, ..."
        if len(fields) < 4 or not fields[0].isdigit() or fields[-1] not in ("0", "1") \
                or not all("/" in f for f in fields[1:3]):
            raise FacestreamError(f"{path}: line {lineno}: expected 'split, person/video, person/video, [...,] "
                                  f"is_same (0 or 1)', got {line.strip()!r}")
        rows.append((int(fields[0]), fields[1].strip("/"), fields[2].strip("/"), fields[-1] == "1"))
    if not rows:
        raise FacestreamError(f"{path}: no pairs; expected lines 'split, person/video, person/video, is_same'")
    folds = {split: k for k, split in enumerate(sorted({r[0] for r in rows}))}
    return [VideoPair(a, b, same, folds[split]) for split, a, b, same in rows]


def ytf_videos(root: Path, names: list[str], named_in: str) -> dict[str, list[Path]]:
    """Frames of each ``person/number`` under ``root``; a missing or empty folder is an error."""
    videos: dict[str, list[Path]] = {}
    for name in dict.fromkeys(names):
        folder = root / name
        if not folder.is_dir():
            raise FacestreamError(f"{folder}: not found (video {name!r} named in {named_in})")
        frames = frames_of(folder)
        if not frames:
            raise FacestreamError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)})")
        videos[name] = frames
    return videos


def scan_ytf(root: Path) -> dict[str, list[str]]:
    """``{person: [person/number, ...]}`` of the videos with frames in YTF's layout."""
    people: dict[str, list[str]] = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        names = [f"{person.name}/{v.name}" for v in sorted(person.iterdir(), key=natural_key)
                 if v.is_dir() and frames_of(v)]
        if names:
            people[person.name] = names
    if not people:
        raise FacestreamError(f"{root}: no videos in YouTube Faces' layout (<person>/<video number>/*.jpg)")
    return people


def read_labels(path: Path) -> dict[str, str]:
    """``{track folder: person}`` from ``TRACK PERSON`` lines (``#`` comments; a person may have spaces)."""
    path = Path(path)
    lines = read_lines(path, "labels file")
    labels: dict[str, str] = {}
    for lineno, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split(None, 1)
        if len(parts) != 2:
            raise FacestreamError(f"{path}: line {lineno}: expected 'TRACK_FOLDER PERSON', got {line.strip()!r}")
        track, person = parts[0].strip("/"), parts[1].strip()
        if track in labels and labels[track] != person:
            raise FacestreamError(f"{path}: line {lineno}: {track} labelled {labels[track]!r} already")
        labels[track] = person
    if not labels:
        raise FacestreamError(f"{path}: no labels; expected lines 'TRACK_FOLDER PERSON'")
    return labels


def track_frames(folder: Path) -> tuple[list[Path], str]:
    """A saved track's crops in frame order (``crop_frames``; the file order without it) and its model."""
    meta_path = folder / "track.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise FacestreamError(f"{folder}: no track.json (not a folder `run --save-unknowns` wrote)") from None
    except (OSError, ValueError) as exc:
        raise FacestreamError(f"{meta_path}: not a readable track.json ({exc})") from None
    crops = sorted(folder.glob("crop-*.png"), key=natural_key)
    if not crops:
        raise FacestreamError(f"{folder}: no crop-<k>.png")
    when = meta.get("crop_frames") if isinstance(meta, dict) else None
    if isinstance(when, list) and len(when) == len(crops):
        # crop-<k> is the k-th best; the protocol wants the first frames
        order = sorted(range(len(crops)), key=lambda k: (when[k], k))
        crops = [crops[k] for k in order]
    return crops, str(meta.get("model", "")) if isinstance(meta, dict) else ""


def load_ytf(root: Path, splits: Path | None, pairs_per_fold: int, seed: int) -> VideoSet:
    root = Path(root)
    if not root.is_dir():
        raise FacestreamError(f"{root}: not found" if not root.exists() else f"{root}: not a directory")
    if splits is not None:
        pairs = parse_ytf_splits(splits)
        videos = ytf_videos(root, [n for p in pairs for n in (p.a, p.b)], str(splits))
        return VideoSet(videos, pairs, aligned=False, pairs_from=splits.name)
    people = scan_ytf(root)
    pairs = _generated(people, pairs_per_fold, seed)
    videos = ytf_videos(root, [n for names in people.values() for n in names], str(root))
    return VideoSet(videos, pairs, aligned=False, pairs_from=f"generated, seed {seed}")


def load_tracks(root: Path, labels_path: Path, pairs_per_fold: int, seed: int) -> VideoSet:
    root = Path(root)
    if not root.is_dir():
        raise FacestreamError(f"{root}: not found" if not root.exists() else f"{root}: not a directory")
    labels = read_labels(labels_path)
    videos: dict[str, list[Path]] = {}
    model_of: dict[str, str] = {}
    people: dict[str, list[str]] = {}
    for track, person in labels.items():
        folder = root / track
        if not folder.is_dir():
            raise FacestreamError(f"{folder}: not found (track {track!r} labelled in {labels_path})")
        videos[track], model_of[track] = track_frames(folder)
        people.setdefault(person, []).append(track)
    unlabelled = sum(1 for p in root.iterdir() if (p / "track.json").is_file() and p.name not in labels)
    if unlabelled:
        log.info("%s: %d saved track(s) without a label left out", root, unlabelled)
    pairs = _generated(people, pairs_per_fold, seed)
    return VideoSet(videos, pairs, aligned=True, pairs_from=f"{labels_path.name}, generated, seed {seed}",
                    model_of=model_of)


def _generated(people: dict[str, list[str]], pairs_per_fold: int, seed: int) -> list[VideoPair]:
    # The image generator over video names (as paths): the same balance, folds and seeding.
    pairs = generate_pairs({p: [Path(n) for n in names] for p, names in people.items()}, pairs_per_fold,
                           DEFAULT_FOLDS, seed)
    return [VideoPair(p.a.as_posix(), p.b.as_posix(), p.same, p.fold) for p in pairs]
