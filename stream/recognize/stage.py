"""The recognition stage of one source: tracked, partly embedded faces in; events out.

This is the voter/publisher process's logic as a plain class: match embeddings against the
gallery, vote per track, emit ``track_started`` / ``identity`` / ``track_ended`` events, and tell
the detect worker which tracks have become confident (so it can embed them less often).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from stream.events.schema import Event
from stream.faces import Faces
from stream.models.manifest import ModelManifest
from stream.recognize.gallery import Gallery
from stream.recognize.voting import TrackVotes, VotingConfig
from stream.track.sort import EndedTrack

log = logging.getLogger(__name__)


@dataclass
class FrameResult:
    source: str
    frame: int
    pts: float
    capture_ts: float
    faces: Faces  # all faces of the frame, track_id set; embeddings (N, D) with NaN rows, or None
    embedded: np.ndarray  # (N,) bool: rows of faces.embeddings valid this frame
    ended: list[EndedTrack] = field(default_factory=list)


@dataclass
class _TrackState:
    votes: TrackVotes
    bbox: list[float]
    frame: int
    pts: float
    confident: bool = False
    last_distance: float | None = None


class RecognitionStage:
    def __init__(self, manifest: ModelManifest, gallery: Gallery, voting: VotingConfig | None = None,
                 threshold: float | None = None) -> None:
        gallery.check_compatible(manifest)
        self.manifest = manifest
        self.gallery = gallery
        self.voting = voting or VotingConfig()
        self.threshold = threshold or manifest.threshold
        self.tracks: dict[int, _TrackState] = {}
        self._status: list[tuple[int, bool]] = []
        self.counts = {"frames": 0, "observations": 0, "tracks": 0, "identity_events": 0}

    def process(self, result: FrameResult) -> list[Event]:
        self.counts["frames"] += 1
        faces = result.faces
        events: list[Event] = []
        now = time.time()
        names: list[str | None] = []
        distances = np.zeros(0, np.float32)
        rows = np.flatnonzero(result.embedded) if faces.embeddings is not None else np.zeros(0, int)
        if len(rows):
            names, distances = self.gallery.match(faces.embeddings[rows])
        matched = {int(r): (names[i], float(distances[i])) for i, r in enumerate(rows)}
        for i, tid in enumerate(int(t) for t in faces.track_id):
            bbox = [round(float(v), 1) for v in faces.xyxy[i]]
            state = self.tracks.get(tid)
            if state is None:
                state = _TrackState(TrackVotes(self.voting, self.threshold), bbox, result.frame, result.pts)
                self.tracks[tid] = state
                self.counts["tracks"] += 1
                events.append(self._event("track_started", result, tid, state, now))
            state.bbox, state.frame, state.pts = bbox, result.frame, result.pts
            if i in matched:
                name, distance = matched[i]
                state.last_distance = distance
                self.counts["observations"] += 1
                changed = state.votes.observe(name, distance, float(faces.widths[i]))
                if changed:
                    self.counts["identity_events"] += 1
                    events.append(self._event("identity", result, tid, state, now))
                if state.votes.confident != state.confident:
                    state.confident = state.votes.confident
                    self._status.append((tid, state.confident))
        for ended in result.ended:
            events.extend(self._end(ended.track_id, result.source, now))
        return events

    def flush(self, source: str) -> list[Event]:
        """End every open track (end of the source)."""
        now = time.time()
        events: list[Event] = []
        for tid in list(self.tracks):
            events.extend(self._end(tid, source, now))
        return events

    def take_status_updates(self) -> list[tuple[int, bool]]:
        updates, self._status = self._status, []
        return updates

    def label(self, track_id: int) -> str:
        state = self.tracks.get(track_id)
        if state is None or state.votes.decided is None:
            return f"#{track_id} unknown"
        return f"#{track_id} {state.votes.decided}"

    def stats(self) -> dict:
        return dict(self.counts, open_tracks=len(self.tracks))

    # -- internals -------------------------------------------------------------------------------
    def _end(self, track_id: int, source: str, now: float) -> list[Event]:
        state = self.tracks.pop(track_id, None)
        if state is None:
            return []
        name, score, distance = state.votes.decision()
        return [Event(type="track_ended", source=source, track_id=track_id, identity=name, score=score,
                      distance=distance, bbox=state.bbox, frame=state.frame, pts=round(state.pts, 3), ts=now,
                      votes=state.votes.summary())]

    def _event(self, kind: str, result: FrameResult, track_id: int, state: _TrackState, now: float) -> Event:
        name, score, distance = state.votes.decision()
        if kind == "track_started":
            distance = None
        return Event(type=kind, source=result.source, track_id=track_id, identity=name, score=score,
                     distance=distance, bbox=state.bbox, frame=result.frame, pts=round(result.pts, 3), ts=now)
