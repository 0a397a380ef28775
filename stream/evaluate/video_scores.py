"""One distance per video pair: the first N frames embedded, then compared in one of two ways.

- ``mean-embedding``: each video is the mean of its frames' embeddings (on the model's own scale,
  as a track's mean is in `run`), the pair's distance the model's metric between the two means.
- ``frame-pairs``: the FaceNet paper's YouTube Faces figure, "the average similarity of all pairs
  of the first one hundred frames": the mean of the N_a x N_b frame-to-frame distances.

Whole frames (YouTube Faces) are detected and aligned as `eval` does photos, the largest face;
saved-track crops are already aligned to the model that ran and are embedded as they are. Measured
on the 100 crops two runs of the Hamilton clip saved (dlib-resnet-v1, 150 x 150): the photo
detector finds a face again in only 9 of them, and re-aligning those moves their embedding by
0.22 (median; threshold 0.6). Re-detecting would lose nine frames in ten and add error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import FacestreamError, ModelError
from stream.evaluate.videos import VideoPair, VideoSet
from stream.images import read_image
from stream.models.manifest import ModelManifest
from stream.models.store import InstalledModel
from stream.photos import detect_crops, embed_crops

log = logging.getLogger(__name__)

SCORES = ("mean-embedding", "frame-pairs")
FACE_RULE = "largest"


@dataclass
class VideoEmbeddings:
    """Per video the (n, D) embeddings of its first frames with a face; the frames without one."""

    frames: dict[str, np.ndarray]
    missing: list[Path]
    frames_used: int


def first_frames(videos: VideoSet, n: int) -> dict[str, list[Path]]:
    return {name: frames[:n] for name, frames in videos.videos.items()}


def check_crops_fit(videos: VideoSet, model: InstalledModel, store) -> None:
    """Saved crops are aligned for the model that ran: another model may use them only when it
    aligns to the same template (its -fp16/-int8 variants do); else the crops would be wrong for it."""
    template = model.manifest.alignment
    for name, saved_by in videos.model_of.items():
        if not saved_by or saved_by == model.name:
            continue
        try:
            other = store.get(saved_by).manifest.alignment
        except ModelError:  # a model since removed: its template is unknown
            other = None
        if other != template:
            raise FacestreamError(f"{name}: crops aligned for model {saved_by!r}, which {model.name!r} does not "
                                  f"share (template {template.width}x{template.height}); evaluate these tracks "
                                  f"with --model {saved_by}")


def embed_videos(videos: VideoSet, model: InstalledModel, n: int,
                 crops_cache: dict[Path, np.ndarray] | None = None) -> VideoEmbeddings:
    """Embeddings of each video's first ``n`` frames; ``crops_cache`` (frame -> aligned crop) is shared
    between models of one template so frames are detected once."""
    manifest = model.manifest
    chosen = first_frames(videos, n)
    paths = list(dict.fromkeys(p for frames in chosen.values() for p in frames))
    cache = {} if crops_cache is None else crops_cache
    todo = [p for p in paths if p not in cache]
    if videos.aligned:
        size = (manifest.alignment.width, manifest.alignment.height)
        for path in todo:
            crop = read_image(path)
            if crop.shape[1::-1] != size:
                raise FacestreamError(f"{path}: a {crop.shape[1]}x{crop.shape[0]} crop; model {model.name} "
                                      f"aligns to {size[0]}x{size[1]}")
            cache[path] = crop
    elif todo:
        found, _ = detect_crops(todo, manifest, FACE_RULE)
        cache.update(found)
    embedded = embed_crops({p: cache[p] for p in paths if p in cache}, model)
    out: dict[str, np.ndarray] = {}
    for name, frames in chosen.items():
        rows = [embedded[p] for p in frames if p in embedded]
        if rows:
            out[name] = np.stack(rows)
    # (a frame detected for an earlier model and found faceless is retried: rare, and only costs time)
    return VideoEmbeddings(out, [p for p in paths if p not in cache], sum(len(v) for v in out.values()))


def pair_distances(embeddings: dict[str, np.ndarray], pairs: list[VideoPair], manifest: ModelManifest,
                   score: str) -> np.ndarray:
    """One distance per pair (both videos must have embeddings)."""
    if score not in SCORES:
        raise ValueError(f"unknown video score {score!r} ({', '.join(SCORES)})")
    out = np.empty(len(pairs), np.float64)
    if score == "mean-embedding":
        means = {name: e.mean(axis=0) for name, e in embeddings.items()}
        for i, p in enumerate(pairs):
            out[i] = manifest.distances(means[p.a][None], means[p.b][None])[0, 0]
    else:
        for i, p in enumerate(pairs):
            out[i] = float(np.mean(manifest.distances(embeddings[p.a], embeddings[p.b])))
    return out


def evaluate_videos(videos: VideoSet, model: InstalledModel, frames: int, scores: tuple[str, ...],
                    crops_cache: dict[Path, np.ndarray] | None = None) -> list[tuple[dict, tuple]]:
    """The protocol per score: [(record, (fpr, tpr, auc))]; the record has the image report's fields."""
    from stream.evaluate.protocol import FAR_TARGET, evaluate, roc_curve

    manifest = model.manifest
    embedded = embed_videos(videos, model, frames, crops_cache)
    kept = [p for p in videos.pairs if p.a in embedded.frames and p.b in embedded.frames]
    if not kept or len({p.fold for p in kept}) < 2:
        raise FacestreamError(f"faces found in too few videos to score any fold ({len(embedded.frames)} of "
                              f"{len(videos.videos)} videos with a face in their first {frames} frames)")
    same = np.array([p.same for p in kept])
    folds = np.array([p.fold for p in kept])
    considered = sum(len(v[:frames]) for v in videos.videos.values())
    out = []
    for score in scores:
        d = pair_distances(embedded.frames, kept, manifest, score)
        result = evaluate(d, same, folds, FAR_TARGET)
        fpr, tpr = roc_curve(d, same)
        record = {
            "model": model.name, "metric": manifest.metric, "manifest_threshold": manifest.threshold,
            "video_score": score, "frames_per_video": frames, "pairs_from": videos.pairs_from,
            "face_rule": "aligned crops" if videos.aligned else FACE_RULE, "videos": len(videos.videos),
            "videos_without_face": len(videos.videos) - len(embedded.frames),
            "pairs": len(kept), "pairs_excluded": len(videos.pairs) - len(kept),
            "images": considered, "frames_embedded": embedded.frames_used,
            "faces_missing": len(embedded.missing), "faces_missing_images": [str(p) for p in embedded.missing],
            "far_target": FAR_TARGET, **result.as_dict(),
        }
        out.append((record, (fpr, tpr, result.auc)))
    return out
