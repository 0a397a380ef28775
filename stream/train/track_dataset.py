"""`--from-tracks DIR`: faces from the user's own footage, with no names.

Layout (what `run --save-unknowns` is to write; any tool can)::

    DIR/<source>-<track_id>/*.png         aligned face crops of one track (any size; resized here)
    DIR/<source>-<track_id>/track.json    {"frames": [12, 13, 14, ...]}  the frames the track was seen in;
                                          optional "source" (else the folder name before its last '-')
                                          and "run" (frame numbers of different runs never match)

This is what `run --save-unknowns DIR` writes (stream/cluster/saved_tracks.py: ``crop-<k>.png``, and
``source``, ``run``, ``frames`` in track.json); its ``.tmp-*`` folders, half-written, are skipped.

Each track is one label: its crops are positives of each other. Two tracks are *proven* different
people only when they are of the same source and were seen in one frame together (one person is
never twice in a frame) of the same run; those pairs, and only those, become negatives. Two tracks never seen
together may be the same person (a track lost and found again), so they are neither.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from stream.errors import FacestreamError
from stream.images import read_image
from stream.models.manifest import AlignmentTemplate
from stream.train.data import IMAGE_SUFFIXES, FaceSet

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"  # a track folder still being written by `run --save-unknowns`


def read_track(folder: Path) -> tuple[tuple[str, str], set[int]]:
    """((source, run), frames) of one track folder, from its track.json."""
    meta_path = folder / "track.json"
    try:
        meta = json.loads(meta_path.read_text())
        frames = {int(f) for f in meta["frames"]}
    except FileNotFoundError:
        raise FacestreamError(f"{meta_path}: missing (each track folder needs a track.json with its frames)") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise FacestreamError(f"{meta_path}: not a track file with a \"frames\" list of integers ({exc})") from None
    source = str(meta.get("source") or folder.name.rsplit("-", 1)[0])
    return (source, str(meta.get("run") or "")), frames


def load_track_faces(root: Path, template: AlignmentTemplate) -> FaceSet:
    """Crops of every track under ``root`` with the proven-different mask."""
    root = Path(root)
    if not root.is_dir():
        raise FacestreamError(f"{root}: not found" if not root.exists() else f"{root}: not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX))
    size = (template.width, template.height)
    crops: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    seen: list[tuple[tuple[str, str], set[int]]] = []
    for folder in folders:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            continue
        seen.append(read_track(folder))
        for path in images:
            crop = read_image(path)
            if crop.shape[1::-1] != size:
                # Saved by another model's template; the templates share their shape (InsightFace's
                # points, scaled), so a resize is close to a re-alignment.
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            crops.append(crop)
            labels.append(len(names))
        names.append(folder.name)
    if len(names) < 2:
        raise FacestreamError(f"{root}: need at least two track folders with crops (<source>-<track_id>/*.png)")
    different = np.zeros((len(names), len(names)), bool)
    for i, (key_i, frames_i) in enumerate(seen):
        for j, (key_j, frames_j) in enumerate(seen[:i]):
            if key_i == key_j and frames_i & frames_j:
                different[i, j] = different[j, i] = True
    if not different.any():
        raise FacestreamError(f"{root}: no two tracks were ever seen in the same frame, so no negatives are known")
    label_array = np.array(labels, np.int64)
    negatives = different[label_array[:, None], label_array[None, :]]
    log.info("%s: %d crops of %d tracks, %d proven-different track pairs", root, len(labels), len(names),
             int(different.sum()) // 2)
    return FaceSet(np.stack(crops), label_array, np.array(names), negatives)
