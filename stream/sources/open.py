"""Make the right FrameSource for a spec."""

from __future__ import annotations

from stream.sources.base import FrameSource
from stream.sources.capture import use_hw_decode
from stream.sources.file import FileSource
from stream.sources.live import LiveSource, ReconnectPolicy
from stream.sources.spec import SourceSpec


def open_source(spec: SourceSpec, *, realtime: bool = False, reconnect: ReconnectPolicy | None = None,
                open_timeout_s: float = 10.0, read_timeout_s: float = 5.0, start_frame: int = 0,
                give_up_after_s: float | None = None, fps: float | None = None,
                hw_decode: str = "cpu") -> FrameSource:
    """Construct (not yet open) the source for ``spec``; call ``open()`` on the result.

    ``start_frame``: the index of the first frame (a file is positioned there; live frames are
    numbered from there), for a reader restarted after its predecessor read that many.
    ``give_up_after_s``: how long a live source may stay down before it ends with an error (None: forever).
    ``fps``: the processing rate; the other frames are skipped unconverted (None: every frame).
    ``hw_decode``: ``sources.hw_decode``, asked for at every capture this process opens."""
    use_hw_decode(hw_decode)
    if spec.kind == "file":
        return FileSource(spec, realtime=realtime, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                          start_frame=start_frame, fps=fps)
    return LiveSource(spec, reconnect=reconnect, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                      start_frame=start_frame, give_up_after_s=give_up_after_s, fps=fps)
