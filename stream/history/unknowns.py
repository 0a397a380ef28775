"""The store's unknown tracks as saved tracks: what ``facestream cluster faces --history`` groups.

Each unknown track (identity NULL) that passes search's quality filter becomes a folder in the layout
``run --save-unknowns`` writes (``<source>-<track_id>-row<id>/track.json`` + ``crop-0.png``), so the
clustering, its output and ``enroll --name NAME OUT/cluster-001`` work on it unchanged:

- ``mean`` is the stored mean on the model's own scale (what its metric and threshold apply to),
  ``embedding`` the same vector made unit;
- ``crop-0.png`` is the stored thumbnail (the best aligned crop, kept as JPEG), decoded: enroll embeds
  it as it embeds a saved crop;
- no ``frames``: the store keeps a track's span up to its end event, which comes after the tracker's
  patience, not the frames it was embedded in, so two overlapping spans do not prove two people
  (one person's track re-found after a cut overlaps its lost predecessor) and no pair is kept apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stream.errors import FacestreamError
from stream.history import tables as T
from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES
from stream.history.store import from_blob, track_filter

if TYPE_CHECKING:
    from stream.history.store import HistoryStore

_ROW_COLUMNS = ("id", "run_id", "source", "track_id", "started_at", "ended_at", "start_pts", "end_pts",
                "first_frame", "last_frame", "video", "detector_score", "faces", "model", "embedding_space",
                "dim", "stranger_id")
_UNSAFE = str.maketrans({c: "_" for c in "/\\:*?\"<>| "})


@dataclass
class StoredUnknown:
    """One unknown track read from the store: its row's fields, mean (model scale) and thumbnail."""

    row: dict
    mean: np.ndarray
    thumbnail: bytes | None

    @property
    def folder_name(self) -> str:
        # the row id keeps two runs' (or two cameras' spellings of) track 3 apart
        return f"{str(self.row['source']).translate(_UNSAFE)}-{self.row['track_id']}-row{self.row['id']}"


def unknown_tracks(store: HistoryStore, *, since: float | None = None, until: float | None = None,
                   source: str | None = None, unnamed_only: bool = False, min_faces: int = MIN_FACES,
                   min_detector_score: float = MIN_DETECTOR_SCORE) -> list[StoredUnknown]:
    """Unknown tracks overlapping [since, until] that search would consider (a mean of a few poor crops
    is near every face, so it would glue clusters together), oldest first. ``unnamed_only``: leave out
    tracks of a stranger already named (their later tracks stay unknown until a gallery knows them)."""
    t = T.tracks.c
    query = (T.tracks.select().with_only_columns(*(t[c] for c in _ROW_COLUMNS), t.mean, t.thumbnail)
             .where(t.faces >= min_faces, t.detector_score >= min_detector_score))
    query = track_filter(query, source=source, since=since, until=until, unknown=True)
    named = {s.stranger_id for s in store.strangers(named=True)} if unnamed_only else set()
    found = []
    with store.engine.connect() as conn:
        for r in conn.execute(query.order_by(t.started_at, t.id)):
            row = {c: r._mapping[c] for c in _ROW_COLUMNS}
            if row["stranger_id"] in named:
                continue
            mean = from_blob(r._mapping["mean"], int(row["dim"]))[0]
            thumb = r._mapping["thumbnail"]
            found.append(StoredUnknown(row, mean, None if thumb is None else bytes(thumb)))
    return found


def export_tracks(tracks: list[StoredUnknown], folder: Path, *, metric: str, threshold: float,
                  store: str) -> None:
    """Write ``tracks`` under ``folder`` (which must exist) as saved-track folders."""
    import cv2

    for track in tracks:
        r = track.row
        raw = np.asarray(track.mean, np.float64)
        norm = float(np.linalg.norm(raw))
        if not np.isfinite(raw).all() or norm == 0.0:
            raise FacestreamError(f"{store}: track row {r['id']} has no usable mean embedding")
        home = folder / track.folder_name
        home.mkdir()
        if track.thumbnail:
            crop = cv2.imdecode(np.frombuffer(track.thumbnail, np.uint8), cv2.IMREAD_COLOR)
            # an undecodable thumbnail leaves the track without a crop, as a saved track with none
            if crop is not None and not cv2.imwrite(str(home / "crop-0.png"), crop):
                raise OSError(f"{home}: cannot write crop-0.png")
        meta = {
            "source": r["source"], "camera": r["source"], "track_id": int(r["track_id"]), "run": r["run_id"],
            "history_row": int(r["id"]), "stranger_id": r["stranger_id"], "store": store,
            "started_at": r["started_at"], "ended_at": r["ended_at"],
            "start_pts": r["start_pts"], "end_pts": r["end_pts"], "video": r["video"],
            "first_frame": int(r["first_frame"]), "last_frame": int(r["last_frame"]),
            "faces": int(r["faces"]), "detector_score": round(float(r["detector_score"]), 4),
            "embedding": [round(float(v), 7) for v in raw / norm],
            "mean": [round(float(v), 7) for v in raw],
            "model": r["model"], "embedding_space": r["embedding_space"], "metric": metric, "threshold": threshold,
        }
        (home / "track.json").write_text(json.dumps(meta) + "\n")
