"""What the live-source tests share: a slow consumer, and waiting for frames to flow again."""

from __future__ import annotations

import time

from stream.frames import Frame
from stream.sources.live import LiveSource


def slow_consumer(source: LiveSource, reads: int = 10, every_s: float = 0.2) -> tuple[list[Frame], list[float]]:
    """Read ``reads`` frames at ``1 / every_s`` fps (slower than the camera): the frames, and how
    old each was when read."""
    frames, ages = [], []
    for _ in range(reads):
        time.sleep(every_s)
        frame = source.read(timeout=3)
        assert frame is not None, "the stream ended"
        ages.append(time.time() - frame.capture_ts)
        frames.append(frame)
    return frames, ages


def assert_newest_frame_only(source: LiveSource, max_age_s: float, reads: int = 10) -> list[Frame]:
    """A consumer at 5 fps on a ~30 fps source gets only fresh frames, and the rest are counted as dropped."""
    frames, ages = slow_consumer(source, reads=reads)
    assert source.stats.frames_dropped > 20, source.stats
    assert max(ages) < max_age_s, f"newest frame only: ages {ages}"
    return frames


def wait_until_frames_flow_again(source: LiveSource, timeout_s: float = 15.0, fresh_s: float = 1.0) -> Frame:
    """After a drop-out: the first frame read after a reconnection that is at most ``fresh_s`` old."""
    deadline = time.monotonic() + timeout_s
    while True:
        frame = source.read(timeout=min(10.0, timeout_s))
        if frame is not None and time.time() - frame.capture_ts < fresh_s and source.stats.last_error:
            return frame
        assert time.monotonic() < deadline, "frames did not flow again"
