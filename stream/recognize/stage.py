"""The recognition stage of one source: tracked, partly embedded faces in; events out.

This is the voter/publisher process's logic as a plain class: match embeddings against the
gallery, vote per track, emit ``track_started`` / ``identity`` / ``track_ended`` events, and tell
the detect worker which tracks have become confident (so it can embed them less often).

The tracker links boxes by position before any embedding exists; this is the first stage that
sees embeddings, so it owns the tracks users see. Each tracker track maps to a published track
id; when a track's new embedding is clearly another person than the track's mean
(``AppearanceConfig.split_factor``), the published track ends (``appearance_changed``) and the
rest continues under a new id with fresh votes: a name is never carried onto another face.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stream.events.schema import Event
from stream.faces import Faces
from stream.models.manifest import ModelManifest
from stream.recognize.appearance import AppearanceConfig, TrackAppearance, face_quality
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
    blur: np.ndarray | None = None  # (N,) 0..1 sharpness of the embedded rows' crops (appearance.blur_quality)


@dataclass
class FrameOutcome:
    """What one frame made: everything the publisher needs, returned rather than left on the stage."""

    events: list[Event]
    tracks: list[tuple[int, str | None]]  # per face: (published track id, decided name or None)
    quality: np.ndarray  # (N,) per face: the voter's quality weight, NaN where not embedded
    # (tracker id, confident) changes since the last frame (set_gallery's too): for the detect worker
    status: list[tuple[int, bool]]

    @property
    def labels(self) -> list[str]:
        """Per face, the text an annotation shows: ``#<track id> <name or unknown>``."""
        return [f"#{public} {name or 'unknown'}" for public, name in self.tracks]


@dataclass
class _TrackState:
    public_id: int
    votes: TrackVotes
    appearance: TrackAppearance
    bbox: list[float]
    frame: int
    pts: float
    confident: bool = False
    last_distance: float | None = None


class RecognitionStage:
    def __init__(self, manifest: ModelManifest, gallery: Gallery, voting: VotingConfig | None = None,
                 threshold: float | None = None, appearance: AppearanceConfig | None = None,
                 new_track_id: Callable[[], int] | None = None) -> None:
        gallery.check_compatible(manifest)
        self.manifest = manifest
        self.gallery = gallery
        self.voting = voting or VotingConfig()
        self.appearance = appearance or AppearanceConfig()
        self.threshold = threshold or manifest.threshold
        self.tracks: dict[int, _TrackState] = {}  # by the tracker's id
        # Published ids must stay unique for the whole run, also when this stage is rebuilt after a
        # restart: the pipeline passes an allocator that outlives the process.
        self._new_track_id = new_track_id or itertools.count(1).__next__
        self._status: list[tuple[int, bool]] = []
        self.counts = {"frames": 0, "observations": 0, "tracks": 0, "identity_events": 0, "splits": 0}

    def process(self, result: FrameResult) -> FrameOutcome:
        """One frame: tracks started or split, then every gallery match of the frame in ONE search
        (the faces' embeddings and, with ``appearance.aggregate``, the updated means of their
        tracks): at 1M entries a search call's fixed cost is what a frame pays, so it is paid once.
        Matching does not depend on the votes, so the votes are cast after it, face by face, in the
        order a match per face would have cast them, and the events come out in the same order."""
        self.counts["frames"] += 1
        faces = result.faces
        now = time.time()
        rows = np.flatnonzero(result.embedded) if faces.embeddings is not None else np.zeros(0, int)
        quality = face_quality(faces[rows], self.voting.full_weight_px)
        if result.blur is not None:
            quality = quality * result.blur[rows]
        embedded = {int(r): float(quality[i]) for i, r in enumerate(rows)}
        frame_quality = np.full(len(faces), np.nan, np.float32)
        frame_quality[rows] = quality
        per_face: list[tuple[_TrackState, list[Event], int | None]] = []  # state, events so far, mean's query row
        means: list[np.ndarray] = []
        for i, tid in enumerate(int(t) for t in faces.track_id):
            events: list[Event] = []
            bbox = [round(float(v), 1) for v in faces.xyxy[i]]
            state = self.tracks.get(tid)
            if state is None:
                state = self._start(tid, result, bbox, now, events)
            state.bbox, state.frame, state.pts = bbox, result.frame, result.pts
            mean_row = None
            if i in embedded:
                embedding = faces.embeddings[i]
                if self._taken_by_another(state, embedding):
                    self.counts["splits"] += 1
                    events.extend(self._end(tid, result.source, now, "appearance_changed"))
                    state = self._start(tid, result, bbox, now, events)
                state.appearance.add(embedding, embedded[i])
                if self.appearance.aggregate and state.appearance.count >= self.voting.min_votes:
                    mean_row = len(rows) + len(means)
                    means.append(state.appearance.mean)  # as it is now: a later face of the frame may move it
            per_face.append((state, events, mean_row))
        names: list[str | None] = []
        distances = np.zeros(0, np.float32)
        if len(rows):
            names, distances = self.gallery.match(np.concatenate([faces.embeddings[rows], *(m[None] for m in means)]))
        match_row = {int(r): k for k, r in enumerate(rows)}
        out: list[Event] = []
        frame_tracks: list[tuple[int, str | None]] = []
        for i, (state, events, mean_row) in enumerate(per_face):
            if i in match_row:
                k = match_row[i]
                state.last_distance = float(distances[k])
                self.counts["observations"] += 1
                changed = state.votes.observe(names[k], float(distances[k]), float(faces.widths[i]))
                if mean_row is not None:
                    changed |= state.votes.adopt(names[mean_row], float(distances[mean_row]))
                if changed:
                    self.counts["identity_events"] += 1
                    events.append(self._event("identity", result, state, now))
                tid = int(faces.track_id[i])
                if state.votes.confident != state.confident:
                    state.confident = state.votes.confident
                    self._status.append((tid, state.confident))
            out.extend(events)
            frame_tracks.append((state.public_id, state.votes.decided))
        for ended in result.ended:
            out.extend(self._end(ended.track_id, result.source, now, ended.reason))
        return FrameOutcome(out, frame_tracks, frame_quality, self.take_status_updates())

    def set_gallery(self, gallery: Gallery, source: str) -> list[Event]:
        """Swap in a reloaded gallery and re-decide the open tracks; the events that follows.

        The rule: a track whose decided name is still enrolled keeps its votes (more photos of
        someone do not unmake a decision). Every other open track (undecided, a stranger, or
        named someone who was removed) starts its votes afresh, so its next embeddings vote
        against the new gallery; its appearance mean stays (it is about the face, not the
        gallery). Those tracks turn unconfident, which tells the detect worker to embed them at
        the full rate again. A removed name is withdrawn at once: an ``identity`` event with no
        identity. Raises FacestreamError for another model's gallery (the old one stays).
        """
        gallery.check_compatible(self.manifest)
        self.gallery = gallery
        enrolled = gallery.enrolled()  # computed by the reload thread for a large gallery
        now = time.time()
        events: list[Event] = []
        for tid, state in self.tracks.items():
            decided = state.votes.decided
            if decided is not None and decided in enrolled:
                continue
            state.votes = TrackVotes(self.voting, self.threshold)
            if state.confident:
                state.confident = False
                self._status.append((tid, False))
            if decided is not None:
                self.counts["identity_events"] += 1
                events.append(Event(type="identity", source=source, track_id=state.public_id, identity=None,
                                    score=0.0, bbox=state.bbox, frame=state.frame, pts=round(state.pts, 3), ts=now,
                                    reason="gallery_changed"))
        return events

    def flush(self, source: str, reason: str = "end_of_source") -> list[Event]:
        """End every open track: the source ended, or the tracker behind the ids restarted."""
        now = time.time()
        events: list[Event] = []
        for tid in list(self.tracks):
            events.extend(self._end(tid, source, now, reason))
        self._status = [(tid, c) for tid, c in self._status if tid in self.tracks]
        return events

    def take_status_updates(self) -> list[tuple[int, bool]]:
        """Confidence changes not yet told (``process`` returns them with its frame; this is for
        ``set_gallery``'s, told before the next frame comes)."""
        updates, self._status = self._status, []
        return updates

    def stats(self) -> dict:
        return dict(self.counts, open_tracks=len(self.tracks))

    # -- internals -------------------------------------------------------------------------------
    def _start(self, tid: int, result: FrameResult, bbox: list[float], now: float, events: list[Event]) -> _TrackState:
        state = _TrackState(self._new_track_id(), TrackVotes(self.voting, self.threshold),
                            TrackAppearance(self.manifest), bbox, result.frame, result.pts)
        self.tracks[tid] = state
        # The detect worker may still hold this tracker id as confident (this stage was rebuilt, or
        # the id's previous track was split): embed it at the unconfident rate until votes decide.
        self._status.append((tid, False))
        self.counts["tracks"] += 1
        events.append(self._event("track_started", result, state, now))
        return state

    def _taken_by_another(self, state: _TrackState, embedding: np.ndarray) -> bool:
        cfg = self.appearance
        if state.appearance.count < cfg.min_observations:
            return False
        return state.appearance.distance(embedding) > cfg.split_factor * self.threshold

    def _end(self, track_id: int, source: str, now: float, reason: str) -> list[Event]:
        state = self.tracks.pop(track_id, None)
        if state is None:
            return []
        name, score, distance = state.votes.decision()
        return [Event(type="track_ended", source=source, track_id=state.public_id, identity=name, score=score,
                      distance=distance, bbox=state.bbox, frame=state.frame, pts=round(state.pts, 3), ts=now,
                      votes=state.votes.summary(), reason=reason)]

    def _event(self, kind: str, result: FrameResult, state: _TrackState, now: float) -> Event:
        name, score, distance = state.votes.decision()
        if kind == "track_started":
            distance = None
        return Event(type=kind, source=result.source, track_id=state.public_id, identity=name, score=score,
                     distance=distance, bbox=state.bbox, frame=result.frame, pts=round(result.pts, 3), ts=now)
