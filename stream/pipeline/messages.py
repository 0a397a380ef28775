"""Typed messages between pipeline processes: small metadata only; pixels stay in shared memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream.faces import Faces
from stream.track.sort import EndedTrack


@dataclass(frozen=True)
class FrameMsg:
    """Reader -> detect worker: a frame sits in ``slot`` of the source's ring."""

    source: str
    slot: int
    index: int
    pts: float
    capture_ts: float
    height: int
    width: int
    read_ms: float = 0.0  # time spent getting this frame from the source (decode, for files)
    # Frames of the source the reader sent before this one (on across reader restarts): a gap in
    # ``index`` is frames a live source dropped, a gap in ``seq`` is frames lost on the way. -1: unknown.
    seq: int = -1


@dataclass(frozen=True)
class FacesMsg:
    """Detect worker -> embedder: tracked faces of one frame; crops of ``embed_rows`` are in the slot."""

    frame: FrameMsg
    faces: Faces  # no crops/embeddings attached: the crops are in shared memory
    embed_rows: np.ndarray  # (K,) int indices into faces, crops 0..K-1 of the slot, in this order
    ended: list[EndedTrack] = field(default_factory=list)
    detect_ms: float = 0.0
    epoch: int = 1  # the detect worker's incarnation: its tracker's ids mean nothing to another one


@dataclass(frozen=True)
class ResultMsg:
    """Embedder -> publisher: the same frame with embeddings for ``embed_rows``."""

    faces_msg: FacesMsg
    embeddings: np.ndarray  # (K, D) float32
    embed_ms: float = 0.0
    batch_size: int = 0


@dataclass(frozen=True)
class EndOfSource:
    """Flows down the pipeline after a source's last frame."""

    source: str
    frames: int
    dropped: int = 0
    error: str | None = None


@dataclass(frozen=True)
class TrackStatus:
    """Publisher -> detect worker: whether a track's identity is confident (drives re-embedding)."""

    source: str
    track_id: int
    confident: bool
    epoch: int = 1  # of the detect worker whose track this is (FacesMsg.epoch)
