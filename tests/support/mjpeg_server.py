"""A live MJPEG stream over HTTP on 127.0.0.1 (what many IP cameras serve), looping a clip in real time.

``multipart/x-mixed-replace`` with one JPEG per part, paced at the clip's frame rate; every client
gets the stream from "now", like a camera. ``stop()`` and ``start()`` on the same port stand for a
camera that drops off the network and comes back. ``bad_part`` makes chosen parts garbage (a camera
that sends an undecodable JPEG now and then); ``fps`` paces it faster or slower than the clip.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import cv2

BOUNDARY = "facestreamframe"


def _encode_clip(clip: Path, max_frames: int = 300) -> tuple[list[bytes], float]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while len(frames) < max_frames:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    cap.release()
    return frames, fps


class MjpegServer:
    def __init__(self, clip: Path, port: int = 0, *, fps: float | None = None,
                 bad_part: Callable[[int], bool] | None = None) -> None:
        self.frames, self.fps = _encode_clip(clip)
        self.fps = fps or self.fps
        self.bad_part = bad_part  # k -> whether a client's k-th part (0-based) is sent as garbage
        self.port = port
        self.sent = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self) -> MjpegServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if urlsplit(self.path).path != "/video.mjpg":  # a query (?password=...) is ignored, as cameras do
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                start, k = time.monotonic(), 0
                try:
                    while not server._stopped.is_set():
                        jpeg = server.frames[k % len(server.frames)]
                        if server.bad_part is not None and server.bad_part(k):
                            jpeg = bytes(range(256)) * (len(jpeg) // 256 + 1)  # no JPEG markers at all
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        server.sent += 1
                        k += 1
                        time.sleep(max(0.0, start + k / server.fps - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._stopped.clear()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket and end every client's stream, as a camera going away would."""
        self._stopped.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
