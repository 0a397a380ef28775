"""What the security tests need around a web view: a page on another port of 127.0.0.1 that tries
its requests in a real browser, and a record of what the view answered (the server's side).

The attacker's page is served by a plain ``http.server`` in a thread: another origin on the same
host, the case where cookies (not scoped by port) ride along with every cross-site request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import media_path

# Every request an attacker can make without the view's cooperation (no CORS answer is ever given):
# no-cors fetches (a text/plain Blob is a "simple" request, no preflight), a text/plain form whose
# body reads as JSON, a DELETE, a WebSocket, an <img> of the MJPEG read back through a canvas, and
# an EventSource. The page records what it saw in window.attack and sets window.attackDone.
ATTACK_PAGE = r"""<!doctype html>
<html><body>
<iframe name="sink" style="display:none"></iframe>
<form id="textform" method="POST" enctype="text/plain" target="sink"><input id="textfield"></form>
<form id="plainform" method="POST" target="sink"><input name="x" value="1"></form>
<img id="cam" alt="">
<canvas id="canvas" width="64" height="64"></canvas>
<script>
const q = new URLSearchParams(location.search);
const port = q.get("port"), person = q.get("person"), track = q.get("track"), cam = q.get("camera");
const T = `http://127.0.0.1:${port}`;
const out = window.attack = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const attempt = async (key, f) => { try { out[key] = await f(); } catch (e) { out[key] = "blocked: " + e; } };
(async () => {
  const photo = await (await fetch("/photo.png")).arrayBuffer();
  await attempt("photo", async () => {
    await fetch(`${T}/api/gallery/${person}/photos`, { method: "POST", mode: "no-cors", credentials: "include",
      body: new Blob([photo], { type: "text/plain" }) });
    return "sent";
  });
  await attempt("name", async () => {
    await fetch(`${T}/api/unknowns/${track}/name`, { method: "POST", mode: "no-cors", credentials: "include",
      body: JSON.stringify({ name: "mallory" }) });
    return "sent";
  });
  // the classic JSON CSRF: a text/plain form body "{"name":"mallory-form","x":"="}" is valid JSON
  const field = document.getElementById("textfield");
  field.name = '{"name":"mallory-form","x":"';
  field.value = '"}';
  const textform = document.getElementById("textform");
  textform.action = `${T}/api/unknowns/${track}/name`;
  textform.submit();
  await sleep(1500);
  await attempt("delete", async () => {
    const r = await fetch(`${T}/api/gallery/${person}`, { method: "DELETE", credentials: "include" });
    return "answered " + r.status;
  });
  const plainform = document.getElementById("plainform");
  plainform.action = `${T}/api/gallery/${person}`;
  plainform.submit();
  await sleep(1000);
  out.ws_messages = await new Promise((resolve) => {
    let n = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/cameras/${cam}/ws`);
    ws.onmessage = () => { n += 1; };
    setTimeout(() => { ws.close(); resolve(n); }, 3000);
  });
  const img = document.getElementById("cam");
  img.src = `${T}/api/cameras/${cam}/mjpeg`;
  await sleep(3000);
  out.img_width = img.naturalWidth;
  await attempt("canvas", async () => {
    const ctx = document.getElementById("canvas").getContext("2d");
    ctx.drawImage(img, 0, 0);
    return "read " + ctx.getImageData(0, 0, 1, 1).data.length;
  });
  img.src = "";
  out.sse_messages = await new Promise((resolve) => {
    let n = 0;
    const es = new EventSource(`${T}/api/events`, { withCredentials: true });
    es.onmessage = () => { n += 1; };
    setTimeout(() => { es.close(); resolve(n); }, 2000);
  });
  window.attackDone = true;
})();
</script>
</body></html>
"""


class AttackerSite:
    """The attacker's origin: ``http://127.0.0.1:<another port>/`` with the page and a face photo."""

    def __init__(self, photo: Path | None = None) -> None:
        files = {"/": (ATTACK_PAGE.encode(), "text/html"),
                 "/photo.png": ((photo or media_path("lin-manuel-miranda.png")).read_bytes(), "image/png")}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = files.get(self.path.split("?")[0], (b"not here", "text/plain"))
                self.send_response(200 if self.path.split("?")[0] in files else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, **params: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"http://127.0.0.1:{self.port}/?{query}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Exchange:
    kind: str  # "http" or "websocket"
    method: str
    path: str
    status: int | None = None  # 101 for an accepted WebSocket
    body: bytearray = field(default_factory=bytearray)
    messages: int = 0  # WebSocket messages sent


class Recorder:
    """ASGI middleware around the whole view: what it answered to each request, as sent."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ex = Exchange(scope["type"], scope.get("method", "GET"), scope["path"])
        self.exchanges.append(ex)

        async def recording_send(message: dict) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                ex.status = message["status"]
            elif kind == "http.response.body":
                ex.body += message.get("body", b"")
            elif kind == "websocket.accept":
                ex.status = 101
            elif kind == "websocket.send":
                ex.messages += 1
            elif kind == "websocket.http.response.start":
                ex.status = message["status"]
            await send(message)

        await self.app(scope, receive, recording_send)

    def to(self, path_part: str) -> list[Exchange]:
        return [ex for ex in self.exchanges if path_part in ex.path]
