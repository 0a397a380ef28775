"""The web view's server on real sockets: pictures (MJPEG, WebSocket), viewers that leave or stall,
the event stream, the token gate, and the gallery and strangers operations."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import numpy as np
import pytest
from websockets.sync.client import connect

from stream.errors import FacestreamError
from stream.web.server import WebServer
from tests.conftest import media_path
from tests.web.conftest import CAMERA, decode_jpeg, decode_ws, make_view, read_mjpeg_parts


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_mjpeg_gives_annotated_jpegs_with_their_capture_time(view):
    parts = read_mjpeg_parts(view.port, f"/api/cameras/{CAMERA}/mjpeg", parts=5)
    indices = [int(h["x-frame"]) for h, _, _ in parts]
    assert indices == sorted(indices) and len(set(indices)) == 5
    for headers, jpeg, arrived in parts:
        image = decode_jpeg(jpeg)
        assert image.shape == (360, 640, 3)
        assert 0 <= arrived - float(headers["x-capture-ts"]) < 2.0
    # the box of the overlay is drawn (green for a known name) at 40..120
    edge = decode_jpeg(parts[-1][1])[40:42, 50:110].reshape(-1, 3).mean(0)
    assert edge[1] > 150 and edge[0] < 120, edge


@pytest.mark.slow
def test_websocket_frames_carry_the_faces_in_view(view):
    with connect(f"ws://127.0.0.1:{view.port}/api/cameras/{CAMERA}/ws", open_timeout=10) as ws:
        header, jpeg = decode_ws(ws.recv(timeout=10))
    assert header["faces"][0]["identity"] == "lin-manuel-miranda"
    assert decode_jpeg(jpeg).shape == (360, 640, 3)


@pytest.mark.slow
def test_a_viewer_that_leaves_stops_being_served(view):
    cam = view.ctx.cameras[CAMERA]
    read_mjpeg_parts(view.port, f"/api/cameras/{CAMERA}/mjpeg", parts=2)
    with connect(f"ws://127.0.0.1:{view.port}/api/cameras/{CAMERA}/ws", open_timeout=10) as ws:
        ws.recv(timeout=10)
    assert _wait(lambda: cam.viewers == 0), f"{cam.viewers} viewer(s) still counted after both left"
    # and with nobody watching, the producer stops asking the publisher for frames
    time.sleep(1.5)
    written = view.pump.written
    time.sleep(2)
    assert view.pump.written - written <= 1


@pytest.mark.slow
def test_a_stalled_viewer_does_not_hold_back_another(view):
    stalled = socket.create_connection(("127.0.0.1", view.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /api/cameras/{CAMERA}/mjpeg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        time.sleep(3)  # long enough for its socket buffers to fill: it never reads
        parts = read_mjpeg_parts(view.port, f"/api/cameras/{CAMERA}/mjpeg", parts=10)
        ages = [arrived - float(h["x-capture-ts"]) for h, _, arrived in parts]
        assert max(ages) < 1.0, ages  # fresh frames, not a queue behind the stalled one
        assert len({h["x-frame"] for h, _, _ in parts}) == 10
    finally:
        stalled.close()


def test_events_stream_to_the_page_recent_first(view):
    view.ctx.feed.add({"type": "identity", "source": CAMERA, "track_id": 3, "identity": "alice"})
    conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    conn.request("GET", "/api/events")
    response = conn.getresponse()
    assert response.getheader("content-type").startswith("text/event-stream")

    def next_event() -> dict:
        while True:
            line = response.fp.readline().decode()
            if line.startswith("data: "):
                return json.loads(line[6:])

    assert next_event()["identity"] == "alice"  # the backlog
    view.ctx.feed.add({"type": "track_ended", "source": CAMERA, "track_id": 3})
    assert next_event()["type"] == "track_ended"  # and what comes after
    conn.close()
    # heartbeats feed the camera state, not the timeline
    view.ctx.feed.add({"type": "heartbeat", "source": CAMERA, "stats": {"sources": {CAMERA: {"online": True}}}})
    assert view.json("/api/cameras")[0]["online"] is True
    assert all(e["type"] != "heartbeat" for e in view.json("/api/events/recent"))


def test_binding_beyond_loopback_needs_a_token():
    with pytest.raises(FacestreamError, match="web.token"):
        WebServer(lambda *a: None, "0.0.0.0:0", token=None)


def test_a_port_in_use_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(FacestreamError, match=f"--http 127.0.0.1:{port}: cannot listen there"):
            WebServer(lambda *a: None, f"127.0.0.1:{port}", token=None)


TOKEN = "s3cret-0f1e2d3c4b5a69788796a5b4"
PHOTO = {"content-type": "application/octet-stream", "x-facestream-request": "1"}  # what the page sends
JSON = {"content-type": "application/json"}


@pytest.mark.slow
def test_with_a_token_every_request_needs_it(tmp_path):
    for view in make_view(tmp_path, token=TOKEN):
        assert view.get("/api/status")[0] == 401
        assert view.get("/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert view.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        basic = base64.b64encode(f"me:{TOKEN}".encode()).decode()
        assert view.get("/api/status", headers={"Authorization": f"Basic {basic}"})[0] == 200
        assert view.get("/healthz")[0] == 200
        status, _, response = view.get(f"/?token={TOKEN}")  # exchanged for the cookie (test_guard.py)
        assert status == 303
        cookie = response.getheader("set-cookie").split(";")[0]
        assert view.get("/api/cameras", headers={"Cookie": cookie})[0] == 200
        # the handshake is refused, however websockets words it
        with pytest.raises(Exception), connect(f"ws://127.0.0.1:{view.port}/api/cameras/{CAMERA}/ws",  # noqa: B017
                                               open_timeout=5) as ws:
            ws.recv(timeout=5)
        with connect(f"ws://127.0.0.1:{view.port}/api/cameras/{CAMERA}/ws", open_timeout=5,
                     additional_headers={"Cookie": cookie}) as ws:
            assert decode_ws(ws.recv(timeout=10))[0]["faces"]


@pytest.fixture(scope="module")
def enroller_parts(default_model):
    from stream.web.people import PhotoEnroller

    return PhotoEnroller


@pytest.mark.slow
def test_gallery_add_photos_list_show_and_delete(tmp_path, default_model, enroller_parts):
    gallery = tmp_path / "people.npz"
    enroller = enroller_parts(default_model.name, gallery)
    for view in make_view(tmp_path, gallery=gallery, enroller=enroller):
        assert view.json("/api/gallery") == []
        photo = media_path("lin-manuel-miranda.png").read_bytes()
        status, body, _ = view.get("/api/gallery/lin-manuel-miranda/photos", method="POST", body=photo,
                                   headers={"x-filename": "lin.png", **PHOTO})
        assert status == 200, body
        status, body, _ = view.get("/api/gallery/nobody/photos", method="POST", body=b"not an image",
                                   headers={"x-filename": "notes.txt", **PHOTO})
        assert status == 400 and json.loads(body)["error"] == "notes.txt: not an image OpenCV can decode"
        status, body, _ = view.get("/api/gallery/two/photos", method="POST",
                                   body=media_path("two_people.jpg").read_bytes(),
                                   headers={"x-filename": "two.jpg", **PHOTO})
        assert status == 400 and "faces found (need exactly one)" in json.loads(body)["error"]
        people = view.json("/api/gallery")
        assert [p["name"] for p in people] == ["lin-manuel-miranda"] and people[0]["photos"] == [0]
        status, thumb, _ = view.get("/api/gallery/photo/0")
        assert status == 200 and max(decode_jpeg(thumb).shape[:2]) <= 160
        assert view.get("/api/gallery/photo/5")[0] == 404
        # a change from the page is announced on the timeline
        assert any(e["type"] == "gallery_changed" for e in view.json("/api/events/recent"))
        assert view.get("/api/gallery/lin-manuel-miranda", method="DELETE")[0] == 200
        assert view.json("/api/gallery") == []
        status, body, _ = view.get("/api/gallery/lin-manuel-miranda", method="DELETE")
        assert status == 400 and "no one named lin-manuel-miranda" in json.loads(body)["error"]
    enroller.close()


def test_naming_a_stranger_enrolls_the_track_it_was(tmp_path, default_model):
    from stream.cluster.saved_tracks import UnknownsRecorder
    from stream.recognize.gallery import Gallery

    manifest = default_model.manifest
    unknowns = tmp_path / "unknowns"
    recorder = UnknownsRecorder(unknowns, manifest, keep=2)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=manifest.embedding_size).astype(np.float32)
    crop = rng.integers(0, 255, (manifest.input.height, manifest.input.width, 3), np.uint8)
    for frame in range(3):
        recorder.observe(CAMERA, 4, frame, crop, emb, quality=1.0)
    recorder.end(CAMERA, 4, unknown=True)
    gallery = tmp_path / "people.npz"
    for view in make_view(tmp_path, gallery=gallery, unknowns=unknowns):
        listed = view.json("/api/unknowns")
        assert [(t["source"], t["track_id"], t["frames"], t["crops"]) for t in listed] == [(CAMERA, 4, 3, 2)]
        status, png, _ = view.get(f"/api/unknowns/{listed[0]['name']}/crop/0")
        assert status == 200 and png.startswith(b"\x89PNG")
        assert view.get("/api/unknowns/..%2F..%2Fetc/crop/0")[0] in (400, 404)
        status, body, _ = view.get(f"/api/unknowns/{listed[0]['name']}/name", method="POST",
                                   body=json.dumps({"name": "carol"}).encode(),
                                   headers={"content-type": "application/json"})
        assert status == 200, body
        assert view.json("/api/unknowns") == []  # named: off the list
        g = Gallery.load(gallery, manifest)
        assert g.names == ["carol"]
        assert np.allclose(g.embeddings[0], emb, atol=1e-5)  # the track's own (model-scale) mean
        assert [p["photos"] for p in view.json("/api/gallery")] == [[0]]  # its crop, moved with it
        status, body, _ = view.get(f"/api/unknowns/{listed[0]['name']}/name", method="POST",
                                   body=json.dumps({"name": "dave"}).encode(), headers=JSON)
        assert status == 400 and "no such unknown track" in json.loads(body)["error"]


def test_an_unusable_name_is_refused_in_one_line(tmp_path):
    for view in make_view(tmp_path, gallery=tmp_path / "g.npz", unknowns=tmp_path):
        status, body, _ = view.get("/api/unknowns/x/name", method="POST", body=b'{"name": "../evil"}',
                                   headers={"content-type": "application/json"})
        assert status == 400, body
        assert json.loads(body)["error"] == "'../evil': not a usable name: contains '/', a path separator"


def test_the_page_is_served_with_its_script(view):
    status, html, _ = view.get("/")
    assert status == 200 and b"/static/app.js" in html
    assert view.get("/static/app.js")[0] == 200
    assert view.json("/api/status")["cameras"] == [CAMERA]
