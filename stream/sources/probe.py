"""Check every camera and stream before the pipeline starts: input that can never work is bad input
(one line, exit status 2), not a reader failing after every process has started.

What can never work: a malformed stream URL, a camera device that is not there. A network stream
that is down is not bad input: cameras reboot and networks flap, so it is reported (one warning)
and its reader retries it in the background, as it does a stream lost mid-run.

Several sources are probed at once, each in its own spawned process: N unreachable cameras cost one
open timeout, not N. Threads would not do: OpenCV's FFmpeg backend holds one process-wide
lock for the whole of an open (connect, handshake, stream probing), so two opens in one process run
one after the other (OpenCV 4.11: 3 silent servers, 1 s timeout, 3 threads -> 3.0 s). A spawned
process gets the source through a pipe, never on its command line.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import re
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2

from stream.errors import FacestreamError
from stream.sources.capture import connect_live, live_unavailable, split_host_port
from stream.sources.credentials import split_url
from stream.sources.live import ReconnectPolicy
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)

MAX_PROBE_PROCESSES = 16  # each imports OpenCV (~100 MB, ~0.3 s of CPU) for the few seconds it lives
#: Schemes whose URL may name no host: they listen (udp://@:5000, srt://:9000?mode=listener).
_LISTENING_SCHEMES = ("udp", "srt", "tcp")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.~-]+)?\]|[A-Za-z0-9_.-]*)$")


@dataclass(frozen=True)
class LiveProbe:
    width: int
    height: int
    fps: float  # as the capture reports it; 0 when unknown
    offline: str | None = None  # why a stream that is down gave no frame; None when it is up


def check_stream_url(spec: SourceSpec) -> None:
    """FacestreamError (one line, masked) for a stream URL no retry can fix: no host, a bad port."""
    parts = split_url(spec.uri)
    if spec.kind != "stream" or parts is None:
        return
    host, port = split_host_port(parts.host_port)  # never the password: split_url keeps it in userinfo
    problem = None
    if not _HOST.match(host) or (port and not port.isdigit()):
        problem = "malformed host[:port]"
    elif port and not 0 < int(port) < 65536:
        problem = f"port {port} is out of range"
    elif not host and parts.scheme.lower() not in _LISTENING_SCHEMES:
        problem = "no host"
    if problem:
        # A malformed host hides where the userinfo ends, so masking cannot find the password: with an
        # '@' that was not read as the end of a userinfo, show no more than the scheme.
        shown = f"{parts.scheme}://***" if "@" in spec.uri and parts.userinfo is None else spec.display
        raise FacestreamError(f"{spec.name} ({shown}): malformed URL: {problem}")


def probe_live(spec: SourceSpec, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> LiveProbe:
    """Connect once, read one frame and let go. FacestreamError naming the source for input that can
    never work; a stream that is down gives a probe with ``offline`` set."""
    if not spec.live:
        raise ValueError(f"{spec.name}: probe_live is for cameras and streams; files are opened by FileSource")
    check_stream_url(spec)
    connected = connect_live(spec, open_timeout_s, read_timeout_s)
    if isinstance(connected, str):
        if spec.kind == "camera":  # a device that is not there does not appear by retrying
            raise live_unavailable(spec)
        return LiveProbe(0, 0, 0.0, offline=connected)
    cap, image = connected.cap, connected.image
    try:
        height, width = image.shape[:2]
        probe = LiveProbe(width, height, float(cap.get(cv2.CAP_PROP_FPS) or 0.0))
    finally:
        cap.release()
    log.info("%s: reachable (%s), %dx%d", spec.name, spec.display, probe.width, probe.height)
    return probe


def probe_live_sources(specs: Sequence[SourceSpec], open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                       retry: ReconnectPolicy | None = None, give_up_after_s: float | None = None) -> list[LiveProbe]:
    """probe_live for every spec, all at once, results in order. Every FacestreamError is reported, in
    one line; any other exception is re-raised as it is. Each stream that is down is warned about once
    (``retry`` and ``give_up_after_s`` are what its reader will do about it)."""
    if len(specs) <= 1:  # nothing to overlap: no process to spawn (~0.3 s)
        results = [probe_live(spec, open_timeout_s, read_timeout_s) for spec in specs]
    else:
        results = _probe_in_processes(specs, open_timeout_s, read_timeout_s)
    for spec, probe in zip(specs, results, strict=True):
        if probe.offline is not None:
            log.warning("%s", offline_at_start(spec, probe.offline, retry or ReconnectPolicy(), give_up_after_s))
    return results


def offline_at_start(spec: SourceSpec, reason: str, retry: ReconnectPolicy, give_up_after_s: float | None) -> str:
    until = f"; giving up after {give_up_after_s:g} s" if give_up_after_s is not None else ""
    return (f"{spec.name}: offline at start ({reason}); retrying every {retry.initial_s:g}-{retry.max_s:g} s"
            f"{until} ({spec.display})")


def _probe_in_processes(specs: Sequence[SourceSpec], open_timeout_s: float, read_timeout_s: float) -> list[LiveProbe]:
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
