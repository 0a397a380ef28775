"""A processing rate per source: which frames to take, evenly by their timestamps.

A source read at ``fps`` frames a second takes the frame nearest each tick of a grid ``1/fps``
apart and skips the others before they are decoded to BGR (a capture's ``grab()`` without its
``retrieve()``). Frames are judged by their own time (a file's pts, a camera's capture time), not
by counting, so a file of variable frame rate is sampled evenly in time, and a source slower than
the rate gives every frame.
"""

from __future__ import annotations

from stream.errors import FacestreamError

#: A live source that reports no frame rate is taken to run at this one where a setting counted in
#: frames of the source's own rate must be converted (cameras and RTSP servers nearly always say).
ASSUMED_FPS = 30.0


class FrameRate:
    """Decides, frame by frame, which frames of one source to process at ``fps`` a second."""

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ValueError("fps must be > 0")
        self.fps = fps
        self.period = 1.0 / fps
        self._due: float | None = None  # time of the next tick of the grid
        self._last: float | None = None  # time of the previous frame seen, taken or not

    def take(self, t: float) -> bool:
        """Whether the frame at time ``t`` (seconds) is processed. Call once per frame, in order."""
        gap = None if self._last is None else t - self._last
        self._last = t
        if self._due is None or gap is None or gap < 0:  # the first frame, or time went back (a new stream)
            self._due = t + self.period
            return True
        # The frame nearest the tick: this one if the next (expected one gap later) would be farther.
        if t < self._due - gap / 2:
            return False
        # A tick a whole period behind (a gap in the video, a source slower than the rate): the grid
        # starts again here rather than taking a burst of frames to catch up.
        self._due = t + self.period if t - self._due >= self.period else self._due + self.period
        return True


def frame_step(rate: float | None, source_fps: float) -> float:
    """Frames of the source's own rate per processed frame (1.0 when every frame is processed).

    Settings counted in frames (tracker age, re-embedding, scan spread) mean frames at the source's
    own rate; a component that counts processed frames divides them by this."""
    if rate is None:
        return 1.0
    nominal = source_fps if source_fps > 0 else ASSUMED_FPS
    return max(1.0, nominal / rate)


def parse_fps(text: str, where: str) -> float:
    """A processing rate as typed (``10``, ``7.5``); one-line error naming ``where`` otherwise."""
    try:
        fps = float(text)
    except ValueError:
        fps = float("nan")
    if not 0 < fps <= 1000:  # also NaN and inf
        raise FacestreamError(f"{where}: fps must be a number of frames a second, > 0 and <= 1000 "
                              f"(got {text!r})")
    return fps
