"""The web view as an ASGI app (Starlette): cameras, their pictures, the event timeline, the gallery.

Pictures: MJPEG (``/api/cameras/NAME/mjpeg``, an ``<img>`` can show it) and WebSocket
(``/api/cameras/NAME/ws``: each message is a 4-byte big-endian header length, a JSON header with
the frame's index, capture time and faces, then the JPEG). The page uses the WebSocket: it measured
the lower latency (tools/bench_web.py) and carries the names in view with each frame. Events:
Server-Sent Events (``/api/events``), the recent ones first. Everything the page does is also a
plain JSON API.

Who may use it is decided in front of the routes: stream.web.guard (the Host names served, and
requests from the page's own origin only: Fetch-Metadata resource isolation plus an Origin check)
and, when a token is set, ``TokenGate``. The routes that take a body check its content type.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from stream.errors import FacestreamError
from stream.web import people
from stream.web.cameras import CameraFeed
from stream.web.feed import EventFeed
from stream.web.guard import HostPolicy, Refused, RequestGuard
from stream.web.history import HistoryView, history_routes
from stream.web.uploads import read_name, read_photo

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "facestream_token"  # + "_<port>": two views on one host keep their own


@dataclass
class WebContext:
    cameras: dict[str, CameraFeed] = field(default_factory=dict)
    feed: EventFeed = field(default_factory=lambda: EventFeed(None))
    #: per source: the run's own counters (frames, dropped, ...), read when the page asks
    camera_state: Callable[[], dict[str, dict[str, Any]]] = dict
    gallery: Path | None = None
    unknowns: Path | None = None
    enroller: people.PhotoEnroller | None = None
    token: str | None = None
    title: str = "facestream"
    hosts: HostPolicy = field(default_factory=HostPolicy)  # the Host names answered (guard.HostPolicy.for_bind)
    history: HistoryView | None = None  # the store of `--history`: the History page and /api/history/


class _Rates:
    """Frames per second per source, from the run's frame counters between two page polls."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        self._fps: dict[str, float] = {}

    def fps(self, name: str, frames: int) -> float:
        now = time.monotonic()
        then = self._last.get(name)
        if then is None or now - then[0] >= 1.0:
            if then is not None:
                self._fps[name] = round((frames - then[1]) / (now - then[0]), 1)
            self._last[name] = (now, frames)
        return self._fps.get(name, 0.0)


def create_app(ctx: WebContext) -> Starlette:
    rates = _Rates()

    async def index(request: Request) -> Response:
        # never inside another site's frame: its clicks would be the page's own, same-origin requests
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                            "Content-Security-Policy": "frame-ancestors 'none'"})

    async def favicon(request: Request) -> Response:
        return Response(_favicon(), media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})

    async def status(request: Request) -> Response:
        return JSONResponse({"title": ctx.title, "cameras": sorted(ctx.cameras),
                             "gallery": ctx.gallery.name if ctx.gallery else None,
                             "can_enroll_photos": ctx.enroller is not None, "unknowns": ctx.unknowns is not None,
                             "history": ctx.history is not None,
                             "history_names_strangers": ctx.history is not None and ctx.history.can_name})

    async def cameras(request: Request) -> Response:
        state = ctx.camera_state()
        out = []
        for name in sorted(ctx.cameras):
            counters = state.get(name, {})
            beat = ctx.feed.heartbeats.get(name, {})
            online = (beat.get("sources") or {}).get(name, {})
            cam = ctx.cameras[name]
            out.append({"name": name, "fps": rates.fps(name, int(counters.get("frames", 0))),
                        "frames": int(counters.get("frames", 0)), "dropped": int(counters.get("live_dropped", 0)),
                        "lost": int(counters.get("lost", 0)), "corrupt": int(counters.get("corrupt", 0)),
                        "ended": bool(counters.get("end_publish", 0)),
                        "online": online.get("online"), "reconnects": online.get("reconnects"),
                        "last_error": online.get("last_error"), "viewers": cam.viewers,
                        "shown": cam.encoded})
        return JSONResponse(out)

    def camera(name: str) -> CameraFeed:
        cam = ctx.cameras.get(name)
        if cam is None:
            raise FacestreamError(f"{name}: no such camera")
        return cam

    async def mjpeg(request: Request) -> Response:
        cam = camera(request.path_params["name"])

        async def parts():
            async for pic in cam.pictures():
                head = (f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(pic.jpeg)}\r\n"
                        f"X-Frame: {pic.index}\r\nX-Capture-Ts: {pic.capture_ts:.6f}\r\n\r\n").encode()
                yield head + pic.jpeg + b"\r\n"

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    async def picture_ws(websocket: WebSocket) -> None:
        cam = camera(websocket.path_params["name"])
        await websocket.accept()
        try:
            async for pic in cam.pictures():
                header = json.dumps({"index": pic.index, "capture_ts": pic.capture_ts, "faces": pic.overlay,
                                     "sent_ts": time.time()}).encode()
                await websocket.send_bytes(struct.pack(">I", len(header)) + header + pic.jpeg)
        except (WebSocketDisconnect, RuntimeError):
            return

    async def events(request: Request) -> Response:
        q = ctx.feed.listen()
        backlog = list(ctx.feed.recent)

        async def stream():
            try:
                if backlog:  # one write: a page that left mid-backlog is noticed at once
                    yield b"".join(_sse(event) for event in backlog)
                while True:
                    try:
                        event = await asyncio.wait_for(q.get(), timeout=15)
                    except asyncio.TimeoutError:
                        yield b": keep-alive\n\n"  # proxies close a silent connection
                        continue
                    yield _sse(event)
            finally:
                ctx.feed.forget(q)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def recent(request: Request) -> Response:
        return JSONResponse(list(ctx.feed.recent))

    async def gallery(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(people.list_people, ctx.gallery))

    async def gallery_photo(request: Request) -> Response:
        data = await run_in_threadpool(people.gallery_photo, ctx.gallery, int(request.path_params["index"]))
        return Response(data, media_type="image/jpeg") if data else PlainTextResponse("no such photo", 404)

    async def add_photo(request: Request) -> Response:
        if ctx.enroller is None:
            raise FacestreamError("this view has no gallery to enroll into (start it with --gallery)")
        data, filename = await read_photo(request, people.MAX_PHOTO_BYTES)
        message = await run_in_threadpool(ctx.enroller.enroll, request.path_params["name"], data, filename)
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message})

    async def remove_person(request: Request) -> Response:
        if ctx.gallery is None:
            raise FacestreamError("this view has no gallery")
        name = request.path_params["name"]
        history = ctx.history.url if ctx.history is not None else None  # the page's forget reaches the store too
        message = await run_in_threadpool(people.remove_person, ctx.gallery, name, ctx.unknowns, history)
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message})

    async def forget_person(request: Request) -> Response:
        """The History page's forget: the person's gallery entries, photos, named strangers' crops and
        every history row (stream.history.erase), then the page's held search vectors."""
        if ctx.history is None and ctx.gallery is None:
            raise Refused(404, "this view has no gallery and no history store")
        from stream.history.erase import forget_everywhere

        name = request.path_params["name"]
        erased = await run_in_threadpool(forget_everywhere, name, gallery=ctx.gallery, unknowns=ctx.unknowns,
                                         history=ctx.history.url if ctx.history is not None else None)
        if ctx.history is not None:
            ctx.history.indexes.drop()  # no forgotten vector stays in the server's memory until a rebuild
        message = "; ".join(erased.lines)
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message, "lines": erased.lines})

    async def unknowns(request: Request) -> Response:
        found = await run_in_threadpool(people.list_unknowns, ctx.unknowns)
        return JSONResponse([t.__dict__ for t in found])

    async def unknown_crop(request: Request) -> Response:
        data = await run_in_threadpool(people.unknown_crop, ctx.unknowns, request.path_params["track"],
                                       int(request.path_params["k"]))
        return Response(data, media_type="image/png") if data else PlainTextResponse("no such crop", 404)

    async def name_unknown(request: Request) -> Response:
        if ctx.gallery is None or ctx.unknowns is None:
            raise FacestreamError("this view has no gallery or no saved unknown tracks")
        name = await read_name(request)
        message = await run_in_threadpool(people.name_unknown, ctx.gallery, ctx.unknowns,
                                          request.path_params["track"], name)
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def user_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=getattr(exc, "status", 400))

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/favicon.ico", favicon),
        Route("/api/status", status),
        Route("/api/cameras", cameras),
        Route("/api/cameras/{name}/mjpeg", mjpeg),
        WebSocketRoute("/api/cameras/{name}/ws", picture_ws),
        Route("/api/events", events),
        Route("/api/events/recent", recent),
        Route("/api/gallery", gallery),
        Route("/api/gallery/photo/{index:int}", gallery_photo),
        Route("/api/gallery/{name}/photos", add_photo, methods=["POST"]),
        Route("/api/gallery/{name}", remove_person, methods=["DELETE"]),
        Route("/api/unknowns", unknowns),
        Route("/api/unknowns/{track}/crop/{k:int}", unknown_crop),
        Route("/api/unknowns/{track}/name", name_unknown, methods=["POST"]),
        Route("/api/history/people/{name}", forget_person, methods=["DELETE"]),
        *history_routes(lambda: ctx.history),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={FacestreamError: user_error, Refused: user_error})
    return RequestGuard(TokenGate(app, ctx.token) if ctx.token else app, ctx.hosts)


_FAVICON: bytes | None = None


def _favicon() -> bytes:
    """A 32x32 icon (a PNG inside an ICO), drawn once: browsers ask for /favicon.ico on every load."""
    global _FAVICON
    if _FAVICON is None:
        import cv2
        import numpy as np

        image = np.zeros((32, 32, 4), np.uint8)
        cv2.circle(image, (16, 16), 14, (60, 200, 60, 255), -1, cv2.LINE_AA)
        cv2.rectangle(image, (9, 9), (23, 23), (255, 255, 255, 255), 2)
        png = cv2.imencode(".png", image)[1].tobytes()
        header = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 32, 32, 0, 0, 1, 32, len(png), 22)
        _FAVICON = header + png
    return _FAVICON


def _sse(event: dict[str, Any]) -> bytes:
    # one kind of message (the type is in the data): the page gets every type, present and future
    return f"data: {json.dumps(event)}\n\n".encode()


def _changed(feed: EventFeed, message: str) -> None:
    """Tell every open page that the gallery changed (the run's own events follow when it reloads)."""
    feed.add({"type": "gallery_changed", "ts": time.time(), "message": message})


class TokenGate:
    """Every request needs the token: ``Authorization: Bearer T``, basic auth with T as the password,
    the cookie, or ``?token=T``. Only ``/healthz`` is open (for load balancers).

    ``?token=T`` on a page load is exchanged for the cookie and a 303 to the same address without
    it, so the token leaves the address bar and the history. The cookie is HttpOnly, SameSite=Strict
    and named per port, but cookies are not scoped by port: a page on another port of the same
    host is same-site and its requests carry it. What stops that page is the Origin and
    Fetch-Metadata check in front of this gate (stream.web.guard), not the cookie.
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if (scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and any(k == "token" for k, _ in query)
                and self._allowed(scope)):
            await self._exchange(scope, send, [(k, v) for k, v in query if k != "token"])
            return
        if self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b'Basic realm="facestream"')]})
        await send({"type": "http.response.body", "body": b"a token is required (see web.token)\n"})

    def _allowed(self, scope: dict) -> bool:
        candidates = []
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            candidates.append(auth[7:])
        elif auth.startswith("Basic "):
            with contextlib.suppress(ValueError):  # not base64 / not UTF-8: no candidate
                candidates.append(base64.b64decode(auth[6:]).decode().partition(":")[2])
        cookie = _cookie_name(scope)
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == cookie:
                candidates.append(unquote(value))
        candidates.extend(v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k == "token")
        return any(secrets.compare_digest(c.encode(), self.token.encode()) for c in candidates)

    async def _exchange(self, scope: dict, send: Callable, rest: list[tuple[str, str]]) -> None:
        # one leading slash: "//host" would send the browser to another site
        location = "/" + quote(scope.get("path", "/").lstrip("/")) + (f"?{urlencode(rest)}" if rest else "")
        # the page's pictures and event stream cannot send a header: they carry the cookie (quoted:
        # a token may hold what a cookie value may not, such as ';' or a space)
        cookie = f"{_cookie_name(scope)}={quote(self.token, safe='')}; HttpOnly; SameSite=Strict; Path=/"
        if scope.get("scheme") == "https":
            cookie += "; Secure"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
                                (b"cache-control", b"no-store"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _cookie_name(scope: dict) -> str:
    server = scope.get("server") or ("", 0)
    return f"{TOKEN_COOKIE}_{server[1]}"
