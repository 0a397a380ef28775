"""Connect once to every camera and stream before the pipeline starts, so an unreachable one is bad
input (one line, exit status 2), not a reader failing after every process has started.

Several sources are probed at once, each in its own spawned process: N unreachable cameras cost one
open timeout, not N. Threads would not do: OpenCV's FFmpeg backend holds one process-wide
lock for the whole of an open (connect, handshake, stream probing), so two opens in one process run
one after the other (OpenCV 4.11: 3 silent servers, 1 s timeout, 3 threads -> 3.0 s). A spawned
process gets the source through a pipe, never on its command line.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2

from stream.errors import FacestreamError
from stream.sources.capture import connect_live, live_unavailable
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)

MAX_PROBE_PROCESSES = 16  # each imports OpenCV (~100 MB, ~0.3 s of CPU) for the few seconds it lives


@dataclass(frozen=True)
class LiveProbe:
    width: int
    height: int
    fps: float  # as the capture reports it; 0 when unknown


def probe_live(spec: SourceSpec, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> LiveProbe:
    """Connect once, read one frame and let go; FacestreamError naming the source when there is no video."""
    if not spec.live:
        raise ValueError(f"{spec.name}: probe_live is for cameras and streams; files are opened by FileSource")
    connected = connect_live(spec, open_timeout_s, read_timeout_s)
    if connected is None:
        raise live_unavailable(spec)
    cap, image = connected
    try:
        height, width = image.shape[:2]
        probe = LiveProbe(width, height, float(cap.get(cv2.CAP_PROP_FPS) or 0.0))
    finally:
        cap.release()
    log.info("%s: reachable (%s), %dx%d", spec.name, spec.display, probe.width, probe.height)
    return probe


def probe_live_sources(specs: Sequence[SourceSpec], open_timeout_s: float = 10.0,
                       read_timeout_s: float = 5.0) -> list[LiveProbe]:
    """probe_live for every spec, all at once, results in order. Every FacestreamError is reported, in
    one line; any other exception is re-raised as it is."""
    if len(specs) <= 1:  # nothing to overlap: no process to spawn (~0.3 s)
        return [probe_live(spec, open_timeout_s, read_timeout_s) for spec in specs]
    results: list[LiveProbe] = []
    problems: list[str] = []
    # spawn, never fork: this process has OpenCV loaded and threads running
    with ProcessPoolExecutor(min(len(specs), MAX_PROBE_PROCESSES), mp_context=mp.get_context("spawn"),
                             initializer=_die_on_interrupt) as pool:
        futures = [pool.submit(probe_live, spec, open_timeout_s, read_timeout_s) for spec in specs]
        for future in futures:  # the pool waits for every probe before it closes
            try:
                results.append(future.result())
            except FacestreamError as exc:
                problems.append(str(exc))
    if problems:
        raise FacestreamError("; ".join(problems))
    return results


def _die_on_interrupt() -> None:
    """Ctrl-C reaches the whole process group: a probe process ends at once and quietly, and this
    process reports the interrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
