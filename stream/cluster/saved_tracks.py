"""Saved unknown tracks on disk: ``DIR/<source>-<track_id>/crop-<k>.png`` + ``track.json``.

One folder per track that ended unknown, written whole when the track ends (a temp folder, then
``os.replace``): a publisher killed mid-write leaves only a ``.tmp-*`` folder, which the next
publisher removes and every reader skips. ``frames`` lists the frames the track was embedded in,
so a trainer can tell tracks of one source and run that were seen together (certain negatives).
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stream.errors import FacestreamError
from stream.models.manifest import ModelManifest

log = logging.getLogger(__name__)

TRACK_FILE = "track.json"
TMP_PREFIX = ".tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class SavedTrack:
    """A saved unknown track as read back: its folder, metadata and unit embedding."""

    path: Path
    meta: dict
    embedding: np.ndarray  # (D,) float32, L2-normalized
    mean: np.ndarray  # (D,) float32 on the model's own scale: what its metric and threshold apply to

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def crops(self) -> list[Path]:
        return sorted(self.path.glob("crop-*.png"), key=lambda p: int(p.stem.split("-")[1]))


@dataclass
class _OpenTrack:
    best: list[tuple[float, int, int, np.ndarray]] = field(default_factory=list)  # min-heap (quality, frame, n, crop)
    frames: list[int] = field(default_factory=list)
    total: np.ndarray | None = None
    weight: float = 0.0
    score_sum: float = 0.0


class UnknownsRecorder:
    """Per open track: the top ``keep`` crops by quality and a quality-weighted embedding sum.

    Memory is bounded by ``keep`` crops per open track (copied out of shared memory, whose slot
    goes back to the reader) plus one frame index per embedding.
    """

    def __init__(self, root: Path, manifest: ModelManifest, keep: int = 5, run: str = "",
                 threshold: float | None = None, min_embeddings: int = 1, min_score: float = 0.0) -> None:
        self.root = Path(root)
        # Short tracks are mostly false detections (a hand, a dark patch): kept out of the clusters,
        # and so are tracks the detector was unsure of throughout (its mean score).
        self.min_embeddings = min_embeddings
        self.min_score = min_score
        self.manifest = manifest
        self.threshold = threshold or manifest.threshold  # the run's (model.threshold overrides the manifest)
        self.keep = keep
        self.run = run
        self.open: dict[tuple[str, int], _OpenTrack] = {}
        self.saved = 0
        self.root.mkdir(parents=True, exist_ok=True)
        # A killed predecessor's half-written track; only this run's: another run may share DIR.
        self._tmp = f"{TMP_PREFIX}{_UNSAFE.sub('_', run)}-" if run else TMP_PREFIX
        for stale in self.root.glob(f"{self._tmp}*"):
            shutil.rmtree(stale, ignore_errors=True)

    def observe(self, source: str, track_id: int, frame: int, crop: np.ndarray, embedding: np.ndarray,
                quality: float, score: float = 1.0) -> None:
        track = self.open.setdefault((source, track_id), _OpenTrack())
        track.frames.append(int(frame))
        track.score_sum += float(score)
        # The voter's weight (TrackAppearance.add): the saved embedding is the mean it matched.
        w = max(float(quality), 1e-3)
        e = np.asarray(embedding, np.float64) * w
        track.total = e if track.total is None else track.total + e
        track.weight += w
        # n breaks ties before the arrays would be compared
        key = (float(quality), int(frame), len(track.frames))
        if len(track.best) < self.keep:
            heapq.heappush(track.best, (*key, np.array(crop)))
        elif key > track.best[0][:3]:
            heapq.heapreplace(track.best, (*key, np.array(crop)))

    def end(self, source: str, track_id: int, unknown: bool) -> Path | None:
        """The track ended: write it when it ended unknown, forget it either way."""
        track = self.open.pop((source, track_id), None)
        if track is None or not unknown or track.total is None or len(track.frames) < self.min_embeddings:
            return None
        if track.score_sum / len(track.frames) < self.min_score:
            return None
        return self._write(source, track_id, track)

    def _write(self, source: str, track_id: int, track: _OpenTrack) -> Path:
        raw = track.total / track.weight
        mean = raw / max(float(np.linalg.norm(raw)), 1e-12)
        best = sorted(track.best, key=lambda t: (-t[0], t[1]))
        name = f"{_UNSAFE.sub('_', source)}-{track_id}"
        final = self.root / name
        n = 2
        while final.exists():  # another run into the same DIR: never overwrite what it saved
            final = self.root / f"{name}.{n}"
            n += 1
        tmp = self.root / f"{self._tmp}{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for k, (_, _, _, crop) in enumerate(best):
            if not cv2.imwrite(str(tmp / f"crop-{k}.png"), crop):
                raise OSError(f"{tmp}: cannot write crop-{k}.png")
        meta = {
            "source": source, "track_id": int(track_id), "run": self.run,
            "first_frame": min(track.frames), "last_frame": max(track.frames), "frames": track.frames,
            "detector_score": round(track.score_sum / len(track.frames), 4),
            "embedding": [round(float(v), 7) for v in mean],
            # dlib's outputs have norms near 1.4: its 0.6 threshold holds on this scale, not the unit one
            "mean": [round(float(v), 7) for v in raw],
            "model": self.manifest.name, "embedding_space": self.manifest.embedding_space,
            "metric": self.manifest.metric, "threshold": self.threshold,
            "quality": [round(b[0], 4) for b in best], "crop_frames": [b[1] for b in best],
        }
        (tmp / TRACK_FILE).write_text(json.dumps(meta) + "\n")
        os.replace(tmp, final)
        self.saved += 1
        return final


def co_occurring(tracks: list[SavedTrack]) -> np.ndarray:
    """(N, N) bool: pairs seen in one frame of one source and run, so certainly two people.

    A track without ``frames`` (one exported from the history store, which keeps only its span) counts
    as seen over ``first_frame``..``last_frame``, as the stranger matching reads two overlapping tracks."""
    n = len(tracks)
    out = np.zeros((n, n), bool)
    frames = [set(t.meta["frames"]) if t.meta.get("frames") else None for t in tracks]
    spans = [_span(t.meta) for t in tracks]
    keys = [(t.meta.get("source"), t.meta.get("run")) for t in tracks]
    for i in range(n):
        for j in range(i + 1, n):
            if keys[i] != keys[j]:
                continue
            a, b = frames[i], frames[j]
            if a is not None and b is not None:
                together = not a.isdisjoint(b)
            else:
                si, sj = spans[i], spans[j]
                together = si is not None and sj is not None and si[0] <= sj[1] and sj[0] <= si[1]
            if together:
                out[i, j] = out[j, i] = True
    return out


def _span(meta: dict) -> tuple[int, int] | None:
    if meta.get("frames"):
        return min(meta["frames"]), max(meta["frames"])
    first, last = meta.get("first_frame"), meta.get("last_frame")
    return None if first is None or last is None else (int(first), int(last))


def read_tracks(root: Path) -> list[SavedTrack]:
    """Every saved track under ``root`` (its own folders, or one level deeper: a cluster output)."""
    root = Path(root)
    if not root.is_dir():
        raise FacestreamError(f"{root}: not a directory of saved tracks")
    files = sorted(p for p in [*root.glob(f"*/{TRACK_FILE}"), *root.glob(f"*/*/{TRACK_FILE}")]
                   if not any(part.startswith(TMP_PREFIX) for part in p.relative_to(root).parts))
    if (root / TRACK_FILE).is_file():
        files.insert(0, root / TRACK_FILE)
    tracks = []
    for path in files:
        try:
            meta = json.loads(path.read_text())
            emb = np.asarray(meta["embedding"], np.float32)
            raw = np.asarray(meta.get("mean", emb), np.float32)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FacestreamError(f"{path}: not a readable track.json ({exc})") from None
        if emb.ndim != 1 or not len(emb) or not np.isfinite(emb).all() or raw.shape != emb.shape \
                or not np.isfinite(raw).all():
            raise FacestreamError(f"{path}: embedding is not a finite vector")
        tracks.append(SavedTrack(path.parent, meta, emb / max(float(np.linalg.norm(emb)), 1e-12), raw))
    return tracks
