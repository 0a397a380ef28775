"""SORT-style multi-face tracker: Kalman-predicted boxes matched to detections by IoU.

Every detection gets a track id at once (new faces get fresh ids; ids are never reused in a
tracker's life). A track unseen for more than ``max_age`` frames ends and is reported by
``pop_ended``. Inputs are never mutated: ``update`` returns a new ``Faces``.

``max_age`` and ``min_hits`` are frames of the source's own rate (they mean time: half a second
at 30 fps); a source processed at a lower rate gives the tracker one frame in ``frame_step``, so
they are converted to processed frames (``stream/track/timescale.py``) and keep their meaning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stream.boxes import intersections
from stream.faces import Faces
from stream.track.assignment import min_cost_assignment
from stream.track.kalman import BoxKalman
from stream.track.timescale import processed_frames

log = logging.getLogger(__name__)


class TrackerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    iou_threshold: float = Field(default=0.25, ge=0.0, le=1.0,
                                 description="least IoU between a predicted track box and a detection to match")
    max_age: int = Field(default=15, ge=0, le=10_000,
                         description="frames (at the source's own rate, whatever sources.fps) a track survives "
                                     "unseen (occlusion, missed detections) before it ends")
    min_hits: int = Field(default=3, ge=1, le=1000,
                          description="frames (at the source's own rate, whatever sources.fps) a track must be "
                                      "seen before it counts as confirmed")


@dataclass(frozen=True)
class EndedTrack:
    track_id: int
    first_frame: int
    last_frame: int
    hits: int
    last_bbox: tuple[float, float, float, float]
    reason: str = "lost"  # lost (unseen for max_age frames), scene_cut, end_of_source


class _Track:
    def __init__(self, track_id: int, box: np.ndarray, frame: int) -> None:
        self.id = track_id
        self.kf = BoxKalman(box)
        self.first_frame = self.last_frame = frame
        self.hits = 1
        self.misses = 0
        self.last_box = box.copy()


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter, area_a, area_b = intersections(a, b)
    return (inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)).astype(np.float32)


def _assign(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-IoU one-to-one assignment (Hungarian). One track or one face needs no solver."""
    if iou.shape[0] == 1 or iou.shape[1] == 1:
        flat = int(iou.argmax())
        return np.array([flat // iou.shape[1]]), np.array([flat % iou.shape[1]])
    return min_cost_assignment(-iou)


#: Frames (at the source's rate) a track may go unseen and still get a closer look at its predicted box.
LOOK_MAX_MISSES = 5


class SortTracker:
    def __init__(self, config: TrackerConfig | None = None, frame_step: float = 1.0) -> None:
        """frame_step: source frames per ``update`` call (1: every frame; 3: 10 fps of a 30 fps source)."""
        self.config = config or TrackerConfig()
        self.max_age = processed_frames(self.config.max_age, frame_step, least=0)
        self.min_hits = processed_frames(self.config.min_hits, frame_step, least=1)
        self.look_max_misses = processed_frames(LOOK_MAX_MISSES, frame_step, least=1)
        self._tracks: list[_Track] = []
        self._ended: list[EndedTrack] = []
        self._next_id = 1
        self._frame = -1

    def update(self, faces: Faces, frame: int | None = None) -> Faces:
        """Assign a track id to every face of this frame; returns a new Faces."""
        self._frame = self._frame + 1 if frame is None else frame
        predicted = np.array([t.kf.predict() for t in self._tracks], np.float32).reshape(-1, 4)
        boxes = faces.xyxy
        ids = np.full(len(faces), -1, np.int64)
        matched_tracks: set[int] = set()
        if len(predicted) and len(boxes):
            iou = iou_matrix(predicted, boxes)
            rows, cols = _assign(iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.config.iou_threshold:
                    track = self._tracks[r]
                    track.kf.update(boxes[c])
                    track.hits += 1
                    track.misses = 0
                    track.last_frame = self._frame
                    track.last_box = boxes[c].copy()
                    ids[c] = track.id
                    matched_tracks.add(r)
        for i, track in enumerate(self._tracks):
            if i not in matched_tracks:
                track.misses += 1
        for c in np.flatnonzero(ids < 0):
            track = _Track(self._next_id, boxes[c], self._frame)
            self._next_id += 1
            self._tracks.append(track)
            ids[c] = track.id
        alive = []
        for track in self._tracks:
            if track.misses > self.max_age:
                self._ended.append(self._ended_record(track))
            else:
                alive.append(track)
        self._tracks = alive
        return faces.with_(track_id=ids)

    def predicted_boxes(self, max_misses: int | None = None) -> np.ndarray:
        """(K, 4) where the tracks seen in the last ``max_misses`` processed frames (default: the
        ``LOOK_MAX_MISSES`` source frames) should be in the next frame: where the detector looks
        closer. Longer-lost tracks are left to the scan."""
        limit = self.look_max_misses if max_misses is None else max_misses
        boxes = [t.kf.peek() for t in self._tracks if t.misses <= limit]
        return np.array(boxes, np.float32).reshape(-1, 4)

    @property
    def open_tracks(self) -> int:
        """Tracks not ended yet, however long unseen."""
        return len(self._tracks)

    def confirmed(self, track_id: int) -> bool:
        return any(t.id == track_id and t.hits >= self.min_hits for t in self._tracks)

    def pop_ended(self) -> list[EndedTrack]:
        ended, self._ended = self._ended, []
        return ended

    def end_all(self, reason: str = "end_of_source") -> list[EndedTrack]:
        """End every open track (end of stream, scene cut); returns them with any not yet popped."""
        self._ended.extend(self._ended_record(t, reason) for t in self._tracks)
        self._tracks = []
        return self.pop_ended()

    def reset(self) -> None:
        self._tracks = []
        self._ended = []
        self._frame = -1

    @staticmethod
    def _ended_record(track: _Track, reason: str = "lost") -> EndedTrack:
        return EndedTrack(track.id, track.first_frame, track.last_frame, track.hits,
                          tuple(float(v) for v in track.last_box), reason)  # type: ignore[arg-type]
