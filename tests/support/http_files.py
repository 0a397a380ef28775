"""A real HTTP server on 127.0.0.1 serving fixed files, with Range support and a way to cut a transfer."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class FileServer:
    """What the server serves and how it behaves; tests change these between requests."""

    files: dict[str, bytes]
    honour_range: bool = True
    cut_after: int | None = None  # drop the connection after this many body bytes (once)
    gone: bool = False  # the server is gone: transfers in progress break, new requests get 503
    bytes_per_s: float | None = None  # throttle bodies, so a client cannot have it all buffered early
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request
    base_url: str = ""

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


def _handler(state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            if state.gone:
                self.send_error(503)
                return
            payload = state.files.get(self.path.lstrip("/"))
            if payload is None:
                self.send_error(404)
                return
            state.ranges.append(self.headers.get("Range"))
            start = 0
            if state.honour_range and self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            else:
                self.send_response(200)
            body = payload[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after is not None:
                self.wfile.write(body[: state.cut_after])
                state.cut_after = None
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            try:
                for start in range(0, len(body), 1 << 16):
                    if state.gone:
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(body[start : start + (1 << 16)])
                    if state.bytes_per_s:
                        time.sleep((1 << 16) / state.bytes_per_s)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client hung up (FFmpeg does, to seek): nothing to report

    return Handler


@contextmanager
def serve_files(files: dict[str, bytes]) -> Iterator[FileServer]:
    state = FileServer(files)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
