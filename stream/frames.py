"""A decoded video frame and where it came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One BGR uint8 frame from a source.

    ``index`` counts frames read from the source (gaps mean dropped frames on live sources);
    ``pts`` is the presentation time in seconds from the source start; ``capture_ts`` is the
    wall clock (``time.time()``) when the reader got it, the start of latency measurements.
    """

    source: str
    index: int
    pts: float
    capture_ts: float
    image: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
