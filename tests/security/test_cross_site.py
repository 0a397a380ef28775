"""A page on another origin of the same host, in a real headless chromium, against a real web view.

Issue 20, items 1 and 2: with no token on loopback, and with a token whose cookie the browser
holds (cookies are not scoped by port, so a page on another port of 127.0.0.1 sends it along),
the attacker's page must not add a photo, name a stranger, delete anyone, or receive a camera
frame or an event. What happened is asserted from the server's side: the gallery file, the
stranger's folder, and what the view answered to each request (tests.security.attacker.Recorder).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stream.recognize.gallery import Gallery
from stream.web.app import WebContext, create_app
from stream.web.cameras import CameraFeed
from stream.web.feed import EventFeed
from stream.web.people import PhotoEnroller, list_unknowns
from stream.web.preview import PreviewBoard, PreviewLayout
from stream.web.server import WebServer
from tests.conftest import media_path
from tests.security.attacker import AttackerSite, Recorder
from tests.web.conftest import CAMERA, FramePump
from tests.web.test_browser import _browser

pytestmark = pytest.mark.slow

TOKEN = "7f3c9a1e5b2d48c6a0e4f1b9d3c7e2a5"
PERSON = "alex-lacamoire"


@dataclass
class Target:
    server: WebServer
    ctx: WebContext
    recorder: Recorder
    pump: FramePump
    gallery: Path
    unknowns: Path
    track: str


def _saved_stranger(unknowns: Path, manifest) -> str:
    from stream.cluster.saved_tracks import UnknownsRecorder

    recorder = UnknownsRecorder(unknowns, manifest, keep=2)
    rng = np.random.default_rng(2)
    emb = rng.normal(size=manifest.embedding_size).astype(np.float32)
    crop = rng.integers(0, 255, (manifest.input.height, manifest.input.width, 3), np.uint8)
    for frame in range(3):
        recorder.observe(CAMERA, 9, frame, crop, emb, quality=1.0)
    recorder.end(CAMERA, 9, unknown=True)
    return list_unknowns(unknowns)[0].name


@pytest.fixture(scope="module")
def enroller(default_model, tmp_path_factory) -> Iterator[PhotoEnroller]:
    enroller = PhotoEnroller(default_model.name, tmp_path_factory.mktemp("unused") / "g.npz")
    yield enroller
    enroller.close()


def make_target(tmp_path: Path, enroller: PhotoEnroller, manifest, token: str | None) -> Iterator[Target]:
    gallery = tmp_path / "people.npz"
    enroller.gallery_path = gallery  # the loaded models, a gallery of this test's own
    enroller.enroll(PERSON, media_path(f"{PERSON}.png").read_bytes(), f"{PERSON}.png")
    unknowns = tmp_path / "unknowns"
    track = _saved_stranger(unknowns, manifest)
    board = PreviewBoard.create(PreviewLayout(f"fs-sectest-{uuid.uuid4().hex[:8]}", 360, 640))
    feed = EventFeed(None)
    feed.add({"type": "identity", "source": CAMERA, "track_id": 3, "identity": PERSON, "ts": time.time()})
    ctx = WebContext(cameras={CAMERA: CameraFeed(CAMERA, board)}, feed=feed, gallery=gallery, unknowns=unknowns,
                     enroller=enroller, token=token)
    recorder = Recorder(create_app(ctx))
    server = WebServer(recorder, "127.0.0.1:0", token).start()
    pump = FramePump(board)
    try:
        yield Target(server, ctx, recorder, pump, gallery, unknowns, track)
    finally:
        pump.stop()
        server.stop()
        board.close()


@pytest.fixture
def browser():
    driver = _browser()
    yield driver
    driver.quit()


@pytest.fixture
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    yield site
    site.close()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token-on-loopback", "token-cookie-held"])
def test_a_page_on_another_port_gets_nothing_in_and_nothing_out(
        tmp_path, enroller, default_model, browser, attacker, token):
    for target in make_target(tmp_path, enroller, default_model.manifest, token):
        port = target.server.port
        if token:  # the operator opened the view with its token: the browser now holds the cookie
            browser.get(f"http://127.0.0.1:{port}/?token={token}")
            assert any(c["name"].startswith("facestream_token") for c in browser.get_cookies())
            time.sleep(1)  # the operator's own page loads (and reads) what it shows: not the attacker's
            target.recorder.exchanges.clear()
        browser.get(attacker.url(port=port, person=PERSON, track=target.track, camera=CAMERA))
        _wait(lambda: browser.execute_script("return window.attackDone === true"), 60, "the attacker's page")
        seen = browser.execute_script("return window.attack")
        time.sleep(0.5)  # a request the page fired last reaches the server

        # nothing got in: the gallery is the one photo of alex-lacamoire, the stranger still unnamed
        gallery = Gallery.load(target.gallery)
        assert gallery.names == [PERSON], f"the attacker changed the gallery to {gallery.names} ({seen})"
        assert not (target.unknowns / ".named").exists() or not any((target.unknowns / ".named").iterdir())
        assert [t.name for t in list_unknowns(target.unknowns)] == [target.track]
        for ex in target.recorder.to("/api/gallery/") + target.recorder.to("/api/unknowns/"):
            assert ex.status in (403, 405), (ex.method, ex.path, ex.status, bytes(ex.body[:200]))
        # and nothing got out: no picture over the WebSocket or the MJPEG, no event over SSE
        sockets = target.recorder.to("/ws")
        assert sockets and all(ex.messages == 0 and ex.status != 101 for ex in sockets), sockets
        assert seen["ws_messages"] == 0
        mjpeg = target.recorder.to("/mjpeg")
        assert mjpeg and all(ex.status == 403 and b"image/jpeg" not in ex.body for ex in mjpeg), \
            [(ex.status, len(ex.body)) for ex in mjpeg]
        assert seen["img_width"] == 0 and str(seen["canvas"]).startswith("blocked")
        events = target.recorder.to("/api/events")
        assert events and all(ex.status == 403 and b"data:" not in ex.body for ex in events), \
            [(ex.status, bytes(ex.body[:100])) for ex in events]
        assert seen["sse_messages"] == 0
