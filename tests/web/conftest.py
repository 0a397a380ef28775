"""A web view over a real uvicorn server on 127.0.0.1, fed real clip frames by a thread standing in
for the publisher (the whole run is tested in test_run_web.py and test_browser.py)."""

from __future__ import annotations

import http.client
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.web.app import WebContext, create_app
from stream.web.cameras import CameraFeed
from stream.web.feed import EventFeed
from stream.web.guard import HostPolicy
from stream.web.preview import PreviewBoard, PreviewLayout
from stream.web.server import WebServer
from tests.support.scenes import clip_frames

CAMERA = "stage"


class FramePump:
    """Writes the clip's frames to a board at ``fps`` while a viewer asks, as the publisher does."""

    def __init__(self, board: PreviewBoard, fps: float = 25.0) -> None:
        self.board = board
        self.frames = [image for _, image in clip_frames(every=5)]
        self.fps = fps
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(1 / self.fps):
            if not self.board.wanted(max_fps=100):
                continue
            image = self.frames[index % len(self.frames)]
            overlay = [{"box": [40.0, 40.0, 120.0, 120.0], "track_id": 1, "identity": "lin-manuel-miranda",
                        "label": "#1 lin-manuel-miranda"}]
            self.board.write(image, overlay, index, time.time())
            index += 1
            self.written += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class View:
    server: WebServer
    ctx: WebContext
    pump: FramePump

    @property
    def port(self) -> int:
        return self.server.port

    def get(self, path: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data, response

    def json(self, path: str, **kw):
        status, data, _ = self.get(path, **kw)
        assert status == 200, data
        return json.loads(data)


def make_view(tmp_path: Path, token: str | None = None, gallery: Path | None = None,
              unknowns: Path | None = None, enroller=None, hosts: HostPolicy | None = None) -> Iterator[View]:
    board = PreviewBoard.create(PreviewLayout(f"fs-webtest-{uuid.uuid4().hex[:8]}", 360, 640))
    feed = EventFeed(None)
    ctx = WebContext(cameras={CAMERA: CameraFeed(CAMERA, board)}, feed=feed,
                     camera_state=lambda: {CAMERA: {"frames": 10, "live_dropped": 0, "lost": 0}},
                     gallery=gallery, unknowns=unknowns, enroller=enroller, token=token,
                     hosts=hosts or HostPolicy())
    server = WebServer(create_app(ctx), "127.0.0.1:0", token).start()
    pump = FramePump(board)
    try:
        yield View(server, ctx, pump)
    finally:
        pump.stop()
        server.stop()
        board.close()


@pytest.fixture
def view(tmp_path: Path) -> Iterator[View]:
    yield from make_view(tmp_path)


def read_mjpeg_parts(port: int, path: str, parts: int, timeout: float = 20.0) -> list[tuple[dict, bytes, float]]:
    """(headers, jpeg, arrival time) of the first ``parts`` parts of a multipart MJPEG response."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200 and "multipart/x-mixed-replace" in response.getheader("content-type")
    out = []
    while len(out) < parts:
        line = response.fp.readline()
        if not line.startswith(b"--frame"):
            continue
        headers = {}
        while (line := response.fp.readline().strip()):
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        jpeg = response.fp.read(int(headers["content-length"]))
        out.append((headers, jpeg, time.time()))
    conn.close()
    return out


def decode_ws(message: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack(">I", message[:4])
    return json.loads(message[4:4 + n]), message[4 + n:]


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image
