"""What the live-source tests share: a slow consumer, and waiting for frames to flow again."""

from __future__ import annotations

import time

from stream.frames import Frame
from stream.sources.live import LiveSource


def slow_consumer(source: LiveSource, reads: int = 10,
                  every_s: float = 0.2) -> tuple[list[Frame], list[float], list[int]]:
    """Read ``reads`` frames at ``1 / every_s`` fps (slower than the camera): the frames, how old each
    was when read, and the index of the newest frame the source had published when each read began."""
    frames, ages, newest = [], [], []
    for _ in range(reads):
        time.sleep(every_s)
        # frames_read counts every frame the grab thread published, numbered from 0 (start_frame 0)
        newest.append(source.stats.frames_read - 1)
        frame = source.read(timeout=3)
        assert frame is not None, "the stream ended"
        ages.append(time.time() - frame.capture_ts)
        frames.append(frame)
    return frames, ages, newest


def assert_newest_frame_only(source: LiveSource, max_age_s: float, reads: int = 10) -> list[Frame]:
    """A consumer at 5 fps on a ~30 fps source gets only the newest frame, and the rest are counted
    as dropped.

    Judged by frame numbers, exactly, on every read: each read gives the newest frame the source had
    when the read began (or a newer one), never an older one waiting in a queue. How old that frame
    is by the wall clock also depends on how soon a loaded machine runs the grab thread (one slow
    read saw 0.27 s on a busy box), so the age bound holds for the typical read, the median."""
    frames, ages, newest = slow_consumer(source, reads=reads)
    assert source.stats.frames_dropped > 20, source.stats
    indices = [f.index for f in frames]
    assert all(i >= n for i, n in zip(indices, newest, strict=True)), f"not the newest: {indices} vs {newest}"
    assert sorted(ages)[len(ages) // 2] < max_age_s, f"newest frame only: ages {ages}"
    return frames


def wait_until_frames_flow_again(source: LiveSource, timeout_s: float = 15.0, fresh_s: float = 1.0) -> Frame:
    """After a drop-out: the first frame read after a reconnection that is at most ``fresh_s`` old."""
    deadline = time.monotonic() + timeout_s
    while True:
        frame = source.read(timeout=min(10.0, timeout_s))
        if frame is not None and time.time() - frame.capture_ts < fresh_s and source.stats.last_error:
            return frame
        assert time.monotonic() < deadline, "frames did not flow again"
