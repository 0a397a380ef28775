"""The newest frame of a source, with what was found on it, for the web view: one shared-memory board.

The publisher writes a frame here only while someone watches (the web side renews
``viewer_until``) and at most ``max_fps`` times a second; it never waits for a reader. The web
side copies the newest frame out when it changes and draws and encodes it in its own process, so
a viewer costs the pipeline one memory copy per shown frame and a stalled viewer costs it nothing.

Consistency without a lock (a lock held by a killed publisher would never be released): a
sequence counter, odd while a write is in progress (a seqlock). A reader that sees it odd, or
changed while it copied, drops that copy and tries the next time. Python's own stores happen in
program order on x86-64; on a weakly ordered CPU a torn copy is possible in theory, and costs one
frame that shows parts of two.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any

import numpy as np

from stream.pipeline.privacy import UnknownFaces

if TYPE_CHECKING:
    from stream.events.schema import Event
    from stream.pipeline.observers import FrameView

_HEADER = 64  # bytes: seq u64, viewer_until f64, capture_ts f64, index i64, h u32, w u32, overlay_len u32
OVERLAY_BYTES = 64 * 1024  # boxes and labels as JSON; a frame with more is written without its overlay


@dataclass(frozen=True)
class PreviewLayout:
    name: str
    max_height: int
    max_width: int

    @property
    def size(self) -> int:
        return _HEADER + OVERLAY_BYTES + self.max_height * self.max_width * 3


@dataclass
class PreviewFrame:
    seq: int
    index: int
    capture_ts: float
    image: np.ndarray  # BGR, a copy owned by the reader
    overlay: list[dict[str, Any]]


class PreviewBoard:
    def __init__(self, layout: PreviewLayout, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self.layout = layout
        self._shm = shm
        self._owner = owner
        buf = shm.buf
        self._seq = np.ndarray((1,), np.uint64, buf, 0)
        self._floats = np.ndarray((2,), np.float64, buf, 8)  # viewer_until, capture_ts
        self._index = np.ndarray((1,), np.int64, buf, 24)
        self._dims = np.ndarray((3,), np.uint32, buf, 32)  # h, w, overlay_len
        self._overlay = np.ndarray((OVERLAY_BYTES,), np.uint8, buf, _HEADER)
        self._pixels = np.ndarray((layout.max_height * layout.max_width * 3,), np.uint8, buf, _HEADER + OVERLAY_BYTES)
        self._last_write = 0.0

    @classmethod
    def create(cls, layout: PreviewLayout) -> PreviewBoard:
        shm = shared_memory.SharedMemory(name=layout.name, create=True, size=layout.size)
        shm.buf[:_HEADER] = bytes(_HEADER)
        return cls(layout, shm, owner=True)

    @classmethod
    def attach(cls, layout: PreviewLayout) -> PreviewBoard:
        # Attached in spawned processes, which share the creator's resource tracker (see FrameRing.attach).
        return cls(layout, shared_memory.SharedMemory(name=layout.name, create=False), owner=False)

    # -- web side --------------------------------------------------------------------------------
    def want(self, for_s: float = 2.0) -> None:
        """A viewer is watching: ask the publisher for frames for the next ``for_s`` seconds."""
        self._floats[0] = time.time() + for_s

    @property
    def seq(self) -> int:
        return int(self._seq[0])

    def read(self, after_seq: int = 0) -> PreviewFrame | None:
        """The newest complete frame if it is newer than ``after_seq``; None otherwise (or mid-write)."""
        before = int(self._seq[0])
        if before <= after_seq or before % 2:
            return None
        h, w, n = (int(v) for v in self._dims)
        capture_ts, index = float(self._floats[1]), int(self._index[0])
        image = self._pixels[: h * w * 3].reshape(h, w, 3).copy()
        overlay_bytes = self._overlay[:n].tobytes()
        if int(self._seq[0]) != before:
            return None
        overlay = json.loads(overlay_bytes) if n else []
        return PreviewFrame(before, index, capture_ts, image, overlay)

    # -- publisher side --------------------------------------------------------------------------
    def wanted(self, max_fps: float, now: float | None = None) -> bool:
        """Whether a frame written now would be shown: a viewer is there and the rate allows it."""
        now = time.time() if now is None else now
        return now < float(self._floats[0]) and now - self._last_write >= 1.0 / max_fps

    def write(self, image: np.ndarray, overlay: list[dict[str, Any]], index: int, capture_ts: float) -> None:
        h, w = image.shape[:2]
        if h > self.layout.max_height or w > self.layout.max_width:
            raise ValueError(f"preview {self.layout.name}: a {w}x{h} frame exceeds the board")
        data = json.dumps(overlay, separators=(",", ":")).encode()
        if len(data) > OVERLAY_BYTES:
            data = b""
        self._seq[0] += 1  # odd: a write is in progress
        self._pixels[: h * w * 3].reshape(h, w, 3)[...] = image
        self._overlay[: len(data)] = np.frombuffer(data, np.uint8)
        self._dims[:] = (h, w, len(data))
        self._floats[1] = capture_ts
        self._index[0] = index
        self._seq[0] += 1
        self._last_write = time.time()

    def close(self) -> None:
        for view in ("_seq", "_floats", "_index", "_dims", "_overlay", "_pixels"):
            setattr(self, view, None)
        with contextlib.suppress(BufferError):  # a frame view still alive; the mapping goes with the process
            self._shm.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()


class PreviewObserver:
    """The publisher's side of the web view's boards: a frame observer (stream/pipeline/observers.py).

    Registered by the run's web view (``PublishSpec.observers``), so the pipeline knows no web module.
    """

    def __init__(self, layouts: dict[str, PreviewLayout], max_fps: float, hide_unknowns: int | None = None) -> None:
        """``hide_unknowns``: privacy.unknowns: blur, holding a missed unknown face's box this many frames
        (stream/pipeline/privacy.py). Blurred here: the unknown faces' pixels never reach the web process."""
        self.max_fps = max_fps
        self.hide = UnknownFaces(hide_unknowns) if hide_unknowns is not None else None
        self.boards = {name: PreviewBoard.attach(layout) for name, layout in layouts.items()}

    def on_frame(self, view: FrameView) -> None:
        """The frame and what is on it, for the web view (which draws and encodes it itself)."""
        board = self.boards.get(view.source)
        hidden = self.hide.boxes(view) if self.hide is not None else None  # every frame: it follows the tracks
        if board is None or not board.wanted(self.max_fps):
            return
        xyxy = view.faces.xyxy
        overlay = [{"box": [round(float(v), 1) for v in xyxy[i]], "track_id": public, "identity": decided,
                    "label": f"#{public} {decided or 'unknown'}"}
                   for i, (public, decided) in enumerate(view.outcome.tracks)]
        image = view.image()
        if hidden is not None and len(hidden):
            from stream.annotate import blur_boxes  # OpenCV: only for a run that blurs

            image = blur_boxes(image.copy(), hidden)  # a copy: the slot is every observer's
        board.write(image, overlay, view.frame.index, view.frame.capture_ts)

    def on_event(self, event: Event) -> None:
        if self.hide is not None:
            self.hide.on_event(event)

    def end_source(self, source: str) -> None:
        if self.hide is not None:
            self.hide.end_source(source)

    def close(self) -> None:
        for board in self.boards.values():
            board.close()
