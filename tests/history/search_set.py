"""The labelled search set: a real run's saved unknown tracks, labelled (search_labels.json) and written
into a history store through its API, for search's tests and tools/bench_search.py --calibrate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LABELS = Path(__file__).with_name("search_labels.json")


@dataclass
class LabelledTrack:
    name: str  # the saved folder's name
    label: str | None  # a person in search_labels.json, "other", or None (unlabelled)
    mean: np.ndarray  # (D,) on the model's scale
    crops: np.ndarray  # (k, H, W, 3) uint8 BGR, best first
    first_frame: int
    last_frame: int
    track_id: int
    source: str
    faces: int  # embeddings in the mean
    detector_score: float


def first_boxes(events_jsonl: Path) -> dict[int, list[float]]:
    """track_id -> its track_started box."""
    out = {}
    for line in Path(events_jsonl).read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "track_started":
            out[event["track_id"]] = event["bbox"]
    return out


def label_of(first: int, last: int, box: list[float] | None, labels: dict) -> str | None:
    cx = None if box is None else (box[0] + box[2]) / 2
    for person, spans in labels["people"].items():
        for span in spans:
            lo, hi = span["frames"]
            xlo, xhi = span["x"]
            if lo <= first and last <= hi and cx is not None and xlo <= cx < xhi:
                return person
    return None


def labelled_tracks(unknowns: Path, events_jsonl: Path) -> list[LabelledTrack]:
    from stream.cluster.saved_tracks import read_tracks

    labels = json.loads(LABELS.read_text())
    boxes = first_boxes(events_jsonl)
    out = []
    for t in read_tracks(unknowns):
        meta = t.meta
        crops = np.stack([cv2.imread(str(p)) for p in t.crops])
        first, last = meta["first_frame"], meta["last_frame"]
        out.append(LabelledTrack(t.name, label_of(first, last, boxes.get(meta["track_id"]), labels), t.mean, crops,
                                 first, last, meta["track_id"], meta["source"], len(meta["frames"]),
                                 float(meta.get("detector_score", 1.0))))
    return out


def write_to_store(store, tracks: list[LabelledTrack], model, fps: float = 29.97, run_id: str = "search-set",
                   video: str | None = None) -> dict[int, LabelledTrack]:
    """Each track as a NewTrack (its best crops embedded with ``model`` on the CPU); row id -> track."""
    from stream.history.store import NewTrack
    from stream.inference.select import cpu_engine

    manifest = model.manifest
    new = []
    with cpu_engine(model) as engine:
        for t in tracks:
            best = np.asarray(engine.embed(t.crops), np.float32)
            ok, jpeg = cv2.imencode(".jpg", t.crops[0])
            new.append(NewTrack(
                run_id=run_id, origin=None, source=t.source, track_id=t.track_id,
                started_at=t.first_frame / fps, ended_at=t.last_frame / fps, start_pts=t.first_frame / fps,
                end_pts=t.last_frame / fps, first_frame=t.first_frame, last_frame=t.last_frame, video=video,
                identity=None, score=None, distance=None, detector_score=t.detector_score, faces=t.faces,
                model=manifest.name, embedding_space=manifest.embedding_space, dim=len(t.mean),
                mean=np.asarray(t.mean, np.float32), best=best, thumbnail=jpeg.tobytes() if ok else None))
    ids = store.write_tracks(new)
    return dict(zip(ids, tracks))
