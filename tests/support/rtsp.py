"""Start and stop the GStreamer RTSP test server (tests/support/rtsp_server.py) from tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


APT_PACKAGES = "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"


def gstreamer_missing(elements: tuple[str, ...] = (), rtsp_server: bool = False) -> str | None:
    """Why Debian's GStreamer (through /usr/bin/python3) cannot run a test here, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    script = ("import sys, gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None); "
              f"sys.exit(any(Gst.ElementFactory.find(e) is None for e in {list(elements)!r}))")
    if rtsp_server:
        script = "gi = __import__('gi'); gi.require_version('GstRtspServer', '1.0'); " \
                 "from gi.repository import GstRtspServer; " + script
    probe = subprocess.run([SYSTEM_PYTHON, "-c", script], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        what = "RTSP server" if rtsp_server else f"with {', '.join(elements)}"
        return f"GStreamer {what} not installed (apt-get install {APT_PACKAGES})"
    return None


def gstreamer_rtsp_missing() -> str | None:
    return gstreamer_missing(rtsp_server=True)


class RtspServer:
    def __init__(self, clip: Path, port: int = 0, tcp_only: bool = True) -> None:
        self.clip = clip
        self.port = port
        self.tcp_only = tcp_only
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> RtspServer:
        cmd = [SYSTEM_PYTHON, str(SERVER), str(self.clip), "--port", str(self.port)]
        if self.tcp_only:
            cmd.append("--tcp-only")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if line.startswith("READY"):
                self.port = int(line.split()[1])
                return self
            if self.proc.poll() is not None:
                break
        self.kill()
        pytest.fail(f"RTSP server did not start: {line!r}")

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
