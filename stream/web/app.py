"""The web view as an ASGI app (Starlette): cameras, their pictures, the event timeline, the gallery.

Pictures: MJPEG (``/api/cameras/NAME/mjpeg``, an ``<img>`` can show it) and WebSocket
(``/api/cameras/NAME/ws``: each message is a 4-byte big-endian header length, a JSON header with
the frame's index, capture time and faces, then the JPEG). The page uses the WebSocket: it measured
the lower latency (tools/bench_web.py) and carries the names in view with each frame. Events:
Server-Sent Events (``/api/events``), the recent ones first. Everything the page does is also a
plain JSON API.
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

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "facestream_token"


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
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        token = request.query_params.get("token")
        if ctx.token and token and secrets.compare_digest(token, ctx.token):
            # the page's pictures and event stream cannot send a header: they carry the cookie
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def status(request: Request) -> Response:
        return JSONResponse({"title": ctx.title, "cameras": sorted(ctx.cameras),
                             "gallery": ctx.gallery.name if ctx.gallery else None,
                             "can_enroll_photos": ctx.enroller is not None, "unknowns": ctx.unknowns is not None})

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
                        "lost": int(counters.get("lost", 0)), "ended": bool(counters.get("end_publish", 0)),
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
        data = await request.body()
        filename = request.headers.get("x-filename", "photo")
        message = await run_in_threadpool(ctx.enroller.enroll, request.path_params["name"], data, filename)
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message})

    async def remove_person(request: Request) -> Response:
        if ctx.gallery is None:
            raise FacestreamError("this view has no gallery")
        name = request.path_params["name"]
        removed = await run_in_threadpool(people.remove_person, ctx.gallery, name)
        message = f"removed {name} ({removed} embedding(s))"
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message})

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
        try:
            body = await request.json()
        except ValueError:
            raise FacestreamError("the request body is not JSON: send {\"name\": \"...\"}") from None
        name = body.get("name", "") if isinstance(body, dict) else ""
        message = await run_in_threadpool(people.name_unknown, ctx.gallery, ctx.unknowns,
                                          request.path_params["track"], name)
        _changed(ctx.feed, message)
        return JSONResponse({"ok": True, "message": message})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def user_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
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
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={FacestreamError: user_error})
    return TokenGate(app, ctx.token) if ctx.token else app


def _sse(event: dict[str, Any]) -> bytes:
    # one kind of message (the type is in the data): the page gets every type, present and future
    return f"data: {json.dumps(event)}\n\n".encode()


def _changed(feed: EventFeed, message: str) -> None:
    """Tell every open page that the gallery changed (the run's own events follow when it reloads)."""
    feed.add({"type": "gallery_changed", "ts": time.time(), "message": message})


class TokenGate:
    """Every request needs the token: ``Authorization: Bearer T``, basic auth with T as the password,
    the cookie the page sets, or ``?token=T``. Only ``/healthz`` is open (for load balancers)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") == "/healthz" or self._allowed(scope):
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
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == TOKEN_COOKIE:
                candidates.append(value)
        from urllib.parse import parse_qs

        candidates.extend(parse_qs(scope.get("query_string", b"").decode()).get("token", []))
        return any(secrets.compare_digest(c.encode(), self.token.encode()) for c in candidates)
