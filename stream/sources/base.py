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
    frames_read: int = 0
    frames_dropped: int = 0  # live: frames replaced by a newer one before anyone took them
    reconnects: int = 0
    last_error: str | None = None


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
