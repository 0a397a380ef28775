"""What every frame source offers the reader process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stream.frames import Frame
from stream.sources.spec import SourceSpec


class SourceTimeout(TimeoutError):
    """No new frame within the read timeout (live sources); the source may still recover."""


@dataclass
class SourceStats:
    frames_read: int = 0  # frames returned by read() (taken at the processing rate, if one is set)
    frames_skipped: int = 0  # frames passed over for the processing rate (sources.fps): never decoded to BGR
    frames_dropped: int = 0  # live: frames replaced by a newer one before anyone took them
    frames_corrupt: int = 0  # live: frames that did not decode, skipped (the stream went on)
    reconnects: int = 0  # live: connection attempts after the first (at start or after a loss)
    last_error: str | None = None
    online: bool = False  # live: connected and reading (a file source leaves this alone)
    offline_since: float | None = None  # live: wall-clock time it went (or started) offline; None when online


class FrameSource(Protocol):
    spec: SourceSpec
    fps: float
    width: int
    height: int
    stats: SourceStats

    def open(self) -> None: ...

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (files) or the newest unseen frame (live); None when the source ended."""

    def close(self) -> None: ...
