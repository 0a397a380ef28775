"""Settings counted in frames, at any processing rate.

A setting such as ``tracker.max_age: 15`` means frames of the source's own rate (half a second
at 30 fps). A source processed at a lower rate (``sources.fps``) gives the tracking stages one
frame in ``frame_step`` of the source's (``stream/sources/rate.py``): counters of *processed*
frames take the setting divided by that step. Counters compared against frame numbers (the
re-embedding cadence, the scan planner's whole scans, the still tiles' rescans) need nothing:
frame numbers are the source's own, skipped frames included.
"""

from __future__ import annotations


def processed_frames(frames: int, frame_step: float, least: int = 1) -> int:
    """``frames`` of the source's rate as processed frames, one every ``frame_step`` source frames.

    Unchanged at ``frame_step`` 1 (every frame processed); never below ``least``."""
    if frame_step <= 1.0:
        return frames
    return max(least, round(frames / frame_step))
