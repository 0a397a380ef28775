"""Source specs: what the user typed for --source, parsed into a name, a URI, a kind and an optional
processing rate (``NAME=URI#fps=10``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from stream.cvpath import opencv_path
from stream.errors import FacestreamError
from stream.sources.credentials import expand_env, mask_credentials, url_path

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
# A recorded video served over HTTP is a file, not a live stream: every frame, and it ends at its end.
# (HLS playlists, .m3u8, and MJPEG camera endpoints stay streams.)
REMOTE_FILE_SCHEMES = ("http", "https")
VIDEO_FILE_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".wmv"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CAMERA = re.compile(r"^(\d+|/dev/video\d+)$")
#: A processing rate for one source, at the very end of what was typed: ``...#fps=10``. Only this exact
#: form is read, so a file named ``take#2.mp4`` or a URL with a fragment stays as it is.
_FPS_SUFFIX = re.compile(r"#fps=([^#]*)$", re.IGNORECASE)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    uri: str
    kind: Literal["file", "camera", "stream"]
    fps: float | None = None  # processing rate from ``#fps=N``; None: sources.fps applies

    @property
    def live(self) -> bool:
        return self.kind != "file"

    @property
    def remote(self) -> bool:
        """A file read over the network (http/https), not from disk."""
        return self.kind == "file" and "://" in self.uri

    @property
    def display(self) -> str:
        """The URI with any password or secret query value masked, for logs, errors and events."""
        return mask_credentials(self.uri)

    def __repr__(self) -> str:  # never the raw URI: a spec may end up in a log line or an error
        rate = "" if self.fps is None else f", fps={self.fps:g}"
        return f"SourceSpec(name={self.name!r}, uri={self.display!r}, kind={self.kind!r}{rate})"

    def rate(self, default: float | None) -> float | None:
        """The processing rate of this source: its own ``#fps=``, else ``default`` (sources.fps)."""
        return self.fps if self.fps is not None else default


def _kind(uri: str) -> Literal["file", "camera", "stream"]:
    if _CAMERA.match(uri):
        return "camera"
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in REMOTE_FILE_SCHEMES and PurePosixPath(url_path(uri)).suffix.lower() in VIDEO_FILE_SUFFIXES:
        return "file"
    if scheme in STREAM_SCHEMES:
        return "stream"
    if scheme and scheme != "file":
        raise FacestreamError(f"{mask_credentials(uri)}: unsupported source scheme {scheme!r} (use a file, "
                              f"a camera, or {', '.join(s + '://' for s in STREAM_SCHEMES[:5])}...)")
    return "file"


def parse_source(text: str, index: int) -> SourceSpec:
    """``[NAME=]URI[#fps=N]``; the default name is the file stem, or ``cam<index>`` for cameras and
    streams; ``#fps=N`` processes N frames a second of this source (overriding sources.fps).

    ``${VAR}`` in the URI is replaced from the environment, so a password need not be on the
    command line, where every user can read it (``ps``).
    """
    text = text.strip()
    shown = mask_credentials(text)
    fps: float | None = None
    rate = _FPS_SUFFIX.search(text)
    if rate:
        from stream.sources.rate import parse_fps

        fps = parse_fps(rate.group(1).strip(), f"--source {shown!r}")
        text = text[: rate.start()].rstrip()
    name: str | None = None
    head, sep, tail = text.partition("=")
    if sep and _NAME.match(head) and "://" not in head and "/" not in head:
        name, uri = head, tail.strip()
    elif sep and not head:
        raise FacestreamError(f"--source {shown!r}: empty name before '='")
    else:
        uri = text
    if not uri:
        raise FacestreamError(f"--source {shown!r}: nothing after the name")
    uri = expand_env(uri, f"--source {shown!r}")
    opencv_path(uri, mask_credentials(uri))  # OpenCV's binding crashes on a name that is not UTF-8
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    kind = _kind(uri)
    if name is None:
        if kind != "file":
            name = f"cam{index}"
        else:  # the file's stem, also for a URL (its path, without the query)
            name = PurePosixPath(url_path(uri)).stem if "://" in uri else Path(uri).stem
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or f"cam{index}"
    return SourceSpec(name=name, uri=uri, kind=kind, fps=fps)


def parse_sources(texts: list[str]) -> list[SourceSpec]:
    specs = [parse_source(t, i) for i, t in enumerate(texts)]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise FacestreamError(f"--source: two sources are named {spec.name!r} ({seen[spec.name]} and "
                                  f"{spec.display}); name them: --source NAME=...")
        seen[spec.name] = spec.display
    return specs
