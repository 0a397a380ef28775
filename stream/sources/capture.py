"""Opening an OpenCV capture the same way for every kind of source."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import NamedTuple

import cv2
import numpy as np

from stream.errors import FacestreamError
from stream.sources.credentials import split_url
from stream.sources.http_check import http_problem, is_http
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)

#: ``sources.hw_decode`` -> OpenCV's video acceleration (FFmpeg backend). ``any`` falls back to the CPU
#: when the build or machine has none; a named one fails the open instead.
HW_DECODE = {"cpu": cv2.VIDEO_ACCELERATION_NONE, "any": cv2.VIDEO_ACCELERATION_ANY,
             "vaapi": cv2.VIDEO_ACCELERATION_VAAPI, "d3d11": cv2.VIDEO_ACCELERATION_D3D11,
             "mfx": cv2.VIDEO_ACCELERATION_MFX}
# Process-wide: each reader process opens one source under one run-wide config, and this keeps the
# source classes' signatures as they are.
_hw_decode = "cpu"


def use_hw_decode(mode: str) -> None:
    """Ask for ``mode`` (a key of HW_DECODE) at every capture this process opens from now on."""
    if mode not in HW_DECODE:
        raise FacestreamError(f"sources.hw_decode: {mode!r} is not one of {', '.join(HW_DECODE)}")
    global _hw_decode
    _hw_decode = mode


def decode_params() -> list[int]:
    """The VideoCapture parameters for the hardware decode asked for ([] for cpu: OpenCV's default)."""
    return [] if _hw_decode == "cpu" else [cv2.CAP_PROP_HW_ACCELERATION, HW_DECODE[_hw_decode]]


def open_capture(uri: str, backend: int, params: list[int]) -> cv2.VideoCapture:
    """``cv2.VideoCapture(uri, backend, params + decode_params())``. A named hardware decoder that this
    OpenCV build or machine lacks makes the open fail at once, like a missing file: when the same open
    without it works, that is said in one line instead of "cannot decode" (a stream that is down pays
    that second open on each reconnect attempt, with a named decoder only)."""
    cap = cv2.VideoCapture(uri, backend, params + decode_params())
    if _hw_decode == "cpu":
        return cap
    if cap.isOpened():
        used = int(cap.get(cv2.CAP_PROP_HW_ACCELERATION))
        log.info("hardware decode asked: %s; in use: %s", _hw_decode,
                 {v: k for k, v in HW_DECODE.items()}.get(used, str(used)) if used else "none (CPU)")
        return cap
    if _hw_decode != "any":
        plain = cv2.VideoCapture(uri, backend, params)
        works = plain.isOpened()
        plain.release()
        if works:
            raise FacestreamError(f"sources.hw_decode: {_hw_decode} is not available here (this OpenCV build or "
                                  "machine has no such decoder); use any or cpu")
    return cap


def open_ffmpeg(uri: str, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    """A network URI through FFmpeg, with OpenCV's open and read timeouts, so nothing blocks forever."""
    return open_capture(uri, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                                              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)])


#: Failed reads in a row a live capture may give before it counts as lost: a read that fails at once
#: is an undecodable frame (a corrupt JPEG part; FFmpeg goes on with the next) or the end of the
#: stream, which fails every read at once. A stalled stream is caught by the read timeout instead.
MAX_BAD_READS = 25


class BadReads:
    """Failed reads of one live capture since its last good frame: corrupt frames, or the stream's end."""

    def __init__(self, read_timeout_s: float) -> None:
        self.read_timeout_s = read_timeout_s
        self.run = 0
        self.since = time.monotonic()  # of the last good frame (or the open)

    def good(self) -> int:
        """A frame came: the failed reads before it were corrupt frames, skipped. Returns how many."""
        corrupt, self.run, self.since = self.run, 0, time.monotonic()
        return corrupt

    def reset(self) -> None:
        """A new connection: nothing failed on it yet."""
        self.run, self.since = 0, time.monotonic()

    def bad(self) -> bool:
        """A read failed: whether to try the same capture again (False: the stream is lost)."""
        self.run += 1
        return self.run < MAX_BAD_READS and time.monotonic() - self.since < self.read_timeout_s


class LiveConnection(NamedTuple):
    cap: cv2.VideoCapture
    image: np.ndarray  # the first frame
    corrupt: int  # undecodable frames skipped before it


def read_first_live(cap: cv2.VideoCapture, read_timeout_s: float) -> tuple[np.ndarray | None, int]:
    """The first frame of a live capture and the corrupt frames skipped before it; (None, 0) with the
    capture released when none came. A camera whose first part is corrupt still connects."""
    if not cap.isOpened():
        cap.release()
        return None, 0
    reads = BadReads(read_timeout_s)
    while True:
        ok, image = cap.read()
        if ok and image is not None:
            return image, reads.good()
        if not reads.bad():
            cap.release()
            return None, 0


def read_first(cap: cv2.VideoCapture) -> np.ndarray | None:
    """The first frame, or None with the capture released. isOpened() can be True after an open that
    timed out while probing, so only a frame proves the source works."""
    ok, image = cap.read() if cap.isOpened() else (False, None)
    if not ok or image is None:
        cap.release()
        return None
    return image


def prefer_rtsp_over_tcp(spec: SourceSpec) -> None:
    """Ask FFmpeg for RTSP over TCP unless the user chose otherwise (OpenCV reads this variable at each open)."""
    rtsp = spec.kind == "stream" and spec.uri.lower().startswith("rtsp")
    if rtsp and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
        # TCP interleaving survives NAT and packet loss; OpenCV 4.11 reads this variable inverted
        # (any non-empty value selects prefer_tcp), and 'rtsp_transport;tcp' is right on both.
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"


def open_live(spec: SourceSpec, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    """A camera (index or V4L2 device) or a network stream, not yet read from."""
    uri = spec.uri
    if spec.kind == "camera":
        return cv2.VideoCapture(int(uri)) if uri.isdigit() else cv2.VideoCapture(uri, cv2.CAP_V4L2)
    prefer_rtsp_over_tcp(spec)
    return open_ffmpeg(uri, open_timeout_s, read_timeout_s)


def connect_live(spec: SourceSpec, open_timeout_s: float, read_timeout_s: float) -> LiveConnection | str:
    """An open live capture and its first frame, or why there is no video (capture released).

    An http(s) URL is asked first (one GET, headers only): an error status or a web page is named,
    and OpenCV, which would only print a warning line of its own, is not asked at all."""
    if is_http(spec):
        problem = http_problem(spec, min(open_timeout_s, 5.0))
        if problem is not None:
            return problem
    cap = open_live(spec, open_timeout_s, read_timeout_s)
    image, corrupt = read_first_live(cap, read_timeout_s)
    if image is None:
        return "camera not available" if spec.kind == "camera" else unreachable_reason(spec, min(open_timeout_s, 2.0))
    return LiveConnection(cap, image, corrupt)


def live_unavailable(spec: SourceSpec) -> FacestreamError:
    """The one-line error for a camera or stream that gave no frame."""
    what = "camera not available" if spec.kind == "camera" else "cannot connect or no video"
    return FacestreamError(f"{spec.name} ({spec.display}): {what}")


#: Where a stream scheme listens when its URL names no port; schemes not here have nothing to dial.
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def split_host_port(host_port: str) -> tuple[str, str]:
    """``host[:port]`` or ``[ipv6][:port]`` -> (host, port as typed, "" when absent)."""
    if host_port.startswith("["):
        host, _, rest = host_port.partition("]")
        return host + "]", rest[1:] if rest.startswith(":") else rest
    host, sep, port = host_port.rpartition(":")
    return (host, port) if sep else (host_port, "")


def tcp_address(spec: SourceSpec) -> tuple[str, int] | None:
    """The host and TCP port a stream connects to; None for cameras, UDP and SRT (connectionless,
    or no port to guess)."""
    parts = split_url(spec.uri) if spec.kind == "stream" else None
    if parts is None or parts.scheme.lower() in ("udp", "srt"):
        return None
    host, port = split_host_port(parts.host_port)
    number = int(port) if port.isdigit() else _DEFAULT_PORTS.get(parts.scheme.lower())
    host = host.strip("[]")
    return (host, number) if host and number is not None else None


def unreachable_reason(spec: SourceSpec, timeout_s: float = 2.0) -> str:
    """Why a stream gave no frame, as far as one plain TCP connect can tell: OpenCV only says "no"."""
    address = tcp_address(spec)
    if address is None:
        return "no video"
    try:
        with socket.create_connection(address, timeout=timeout_s):
            pass
    except socket.gaierror:
        return f"cannot resolve host {address[0]}"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "connection timed out"
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return "connected, but no video"  # a server that answers with an error page, 401, or nothing
