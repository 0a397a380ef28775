"""The web view's own-origin rules on a real uvicorn (issue 20, items 1, 2, 3's upload size, 10's web bits).

Each request is what a browser on another origin would send (its Origin and Sec-Fetch-Site
headers), made here with http.client and websockets; tests/security/ has the same in chromium.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time

import numpy as np
import pytest
from websockets.sync.client import connect

from stream.config.schema import load_config
from stream.errors import FacestreamError
from stream.web.guard import HostPolicy, same_origin
from stream.web.people import MAX_PHOTO_BYTES, PhotoEnroller
from stream.web.server import WebServer, resolve_token
from tests.conftest import assert_one_line_error
from tests.support.net import free_port
from tests.web.conftest import CAMERA, decode_ws, make_view

TOKEN = "b1f2c3d4e5f60718293a4b5c6d7e8f90"
PHOTO_PATH = "/api/gallery/alex-lacamoire/photos"


def _stranger(unknowns, manifest) -> str:
    from stream.cluster.saved_tracks import UnknownsRecorder
    from stream.web.people import list_unknowns

    recorder = UnknownsRecorder(unknowns, manifest, keep=1)
    rng = np.random.default_rng(3)
    crop = rng.integers(0, 255, (manifest.input.height, manifest.input.width, 3), np.uint8)
    recorder.observe(CAMERA, 5, 0, crop, rng.normal(size=manifest.embedding_size).astype(np.float32), quality=1.0)
    recorder.end(CAMERA, 5, unknown=True)
    return list_unknowns(unknowns)[0].name


# -- Host: DNS rebinding ---------------------------------------------------------------------------

def test_a_rebinding_host_is_refused_and_the_names_served_are_answered(tmp_path):
    for view in make_view(tmp_path):
        port = view.port
        for path in ("/", "/api/status", "/api/gallery"):
            status, body, _ = view.get(path, headers={"Host": f"attacker.example:{port}"})
            assert status == 421 and b"attacker.example" in body, (path, status, body)
        with pytest.raises(Exception), connect(f"ws://127.0.0.1:{port}/api/cameras/{CAMERA}/ws",  # noqa: B017
                                               additional_headers={"Host": f"attacker.example:{port}"},
                                               open_timeout=5) as ws:
            ws.recv(timeout=5)
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "127.0.0.2"):
            assert view.get("/api/status", headers={"Host": host})[0] == 200, host
        assert view.get("/healthz", headers={"Host": "attacker.example"})[0] == 200  # a load balancer's probe


def test_web_allowed_hosts_adds_a_proxy_name(tmp_path):
    for view in make_view(tmp_path, hosts=HostPolicy.for_bind("127.0.0.1", ["faces.example"])):
        assert view.get("/api/status", headers={"Host": "faces.example"})[0] == 200
        assert view.get("/api/status", headers={"Host": "Faces.Example:443"})[0] == 200
        assert view.get("/api/status", headers={"Host": "other.example"})[0] == 421
    wildcard = HostPolicy.for_bind("0.0.0.0", [])
    assert wildcard.allows("192.168.1.20") and not wildcard.allows("attacker.example")


def test_origin_comparison():
    assert same_origin("http://127.0.0.1:8080", ("127.0.0.1", 8080), "http")
    assert not same_origin("http://127.0.0.1:18099", ("127.0.0.1", 8080), "http")  # another port: same site only
    assert not same_origin("null", ("127.0.0.1", 8080), "http")
    assert same_origin("https://faces.example", ("faces.example", None), "http")  # a TLS proxy in front
    assert not same_origin("https://faces.example:8443", ("faces.example", None), "http")
    assert not same_origin("http://faces.example.attacker.example", ("faces.example", None), "http")


# -- cross-origin requests: nothing changes, nothing is read ---------------------------------------

def test_a_cross_origin_write_is_refused_whatever_its_content_type(tmp_path, default_model):
    unknowns = tmp_path / "unknowns"
    track = _stranger(unknowns, default_model.manifest)
    gallery = tmp_path / "people.npz"
    for view in make_view(tmp_path, gallery=gallery, unknowns=unknowns,
                          enroller=PhotoEnroller(default_model.name, gallery)):
        evil = {"Origin": f"http://127.0.0.1:{free_port()}", "Sec-Fetch-Site": "same-site",
                "Content-Type": "application/json"}
        body = json.dumps({"name": "mallory"}).encode()
        for headers in (evil, {"Origin": evil["Origin"]}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            for method, path, data in (("POST", f"/api/unknowns/{track}/name", body),
                                       ("DELETE", "/api/gallery/anyone", None),
                                       ("POST", PHOTO_PATH, b"\x89PNG")):
                status, answer, _ = view.get(path, method=method, body=data, headers=headers)
                assert status == 403, (headers, method, path, status, answer)
                assert json.loads(answer)["error"].count("\n") == 0
        # a text/plain POST (what a form or a no-cors fetch sends) with no browser headers at all
        status, answer, _ = view.get(f"/api/unknowns/{track}/name", method="POST", body=body,
                                     headers={"Content-Type": "text/plain"})
        assert status == 415 and "application/json" in json.loads(answer)["error"]
        assert not gallery.exists() and (unknowns / track).is_dir()
        # the page's own requests pass: same origin
        own = {"Origin": f"http://127.0.0.1:{view.port}", "Sec-Fetch-Site": "same-origin",
               "Content-Type": "application/json"}
        status, answer, _ = view.get(f"/api/unknowns/{track}/name", method="POST", body=body, headers=own)
        assert status == 200, answer


def test_the_photo_upload_wants_an_image_type_and_the_pages_header(tmp_path):
    gallery = tmp_path / "people.npz"
    for view in make_view(tmp_path, gallery=gallery, enroller=PhotoEnroller("unused", gallery)):
        status, answer, _ = view.get(PHOTO_PATH, method="POST", body=b"\x89PNG",
                                     headers={"Content-Type": "text/plain", "X-Facestream-Request": "1"})
        assert status == 415, answer
        status, answer, _ = view.get(PHOTO_PATH, method="POST", body=b"\x89PNG", headers={"Content-Type": "image/png"})
        assert status == 403 and "x-facestream-request" in json.loads(answer)["error"]
        assert not gallery.exists()


def test_cross_site_reads_of_faces_are_refused_and_the_page_itself_opens(tmp_path):
    for view in make_view(tmp_path):
        view.ctx.feed.add({"type": "identity", "source": CAMERA, "track_id": 1, "identity": "alice"})
        for site in ("cross-site", "same-site"):
            for path in (f"/api/cameras/{CAMERA}/mjpeg", "/api/events", "/api/gallery", "/api/gallery/photo/0",
                         "/api/unknowns", "/api/events/recent", "/api/status"):
                status, body, _ = view.get(path, headers={"Sec-Fetch-Site": site})
                assert status == 403 and b"alice" not in body, (site, path, status)
            # a link from another site still opens the page
            assert view.get("/", headers={"Sec-Fetch-Site": site})[0] == 200
        status, body, _ = view.get("/api/events", headers={"Origin": "http://127.0.0.1:1"})
        assert status == 403 and b"alice" not in body
        assert view.get("/api/status", headers={"Sec-Fetch-Site": "same-origin"})[0] == 200
        assert view.get("/api/status", headers={"Sec-Fetch-Site": "none"})[0] == 200  # typed into the address bar
        _, _, response = view.get("/")
        assert response.getheader("x-frame-options") == "DENY"  # nor inside another site's frame


@pytest.mark.slow
def test_a_websocket_from_another_origin_gets_no_frame(tmp_path):
    for view in make_view(tmp_path):
        url = f"ws://127.0.0.1:{view.port}/api/cameras/{CAMERA}/ws"
        with pytest.raises(Exception, match="403"), connect(
                url, origin=f"http://127.0.0.1:{free_port()}", open_timeout=5) as ws:
            ws.recv(timeout=5)
        assert view.ctx.cameras[CAMERA].encoded == 0 and view.pump.written == 0
        with connect(url, origin=f"http://127.0.0.1:{view.port}", open_timeout=5) as ws:  # the page itself
            assert decode_ws(ws.recv(timeout=10))[0]["faces"]
        with connect(url, open_timeout=5) as ws:  # no Origin: not a browser
            assert decode_ws(ws.recv(timeout=10))[0]["faces"]


# -- uploads: refused as soon as they pass the limit -----------------------------------------------

def _raw_upload(port: int, head: str, chunks: int = 0) -> tuple[str, float]:
    """Send ``head`` and ``chunks`` MB of chunked body without ever ending it; the status line read back."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(head.encode())
        block = b"\0" * 2**20
        for _ in range(chunks):
            sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
        started = time.monotonic()
        line = sock.makefile("rb").readline().decode()
        return line, time.monotonic() - started
    finally:
        sock.close()


def test_an_upload_over_the_limit_is_refused_before_it_is_read_whole(tmp_path):
    gallery = tmp_path / "people.npz"
    for view in make_view(tmp_path, gallery=gallery, enroller=PhotoEnroller("unused", gallery)):
        common = (f"POST {PHOTO_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{view.port}\r\nContent-Type: image/png\r\n"
                  "X-Facestream-Request: 1\r\n")
        # a declared 200 MB: refused without a byte of the body sent
        line, _ = _raw_upload(view.port, common + "Content-Length: 200000000\r\n\r\n")
        assert line.startswith("HTTP/1.1 413"), line
        # no length given: refused once 20 MB have come, while the sender has more to send
        line, _ = _raw_upload(view.port, common + "Transfer-Encoding: chunked\r\n\r\n",
                              chunks=MAX_PHOTO_BYTES // 2**20 + 1)
        assert line.startswith("HTTP/1.1 413"), line
        assert not gallery.exists()


# -- the token ------------------------------------------------------------------------------------

def test_the_token_in_the_address_is_exchanged_for_a_cookie_of_this_port(tmp_path):
    for view in make_view(tmp_path, token=TOKEN):
        status, _, response = view.get(f"/?token={TOKEN}")
        assert status == 303 and response.getheader("location") == "/"
        cookie = response.getheader("set-cookie")
        name_value = cookie.split(";")[0]
        assert name_value == f"facestream_token_{view.port}={TOKEN}"
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        status, _, response = view.get(f"/?camera=stage&token={TOKEN}")
        assert status == 303 and response.getheader("location") == "/?camera=stage"
        assert view.get("/", headers={"Cookie": name_value})[0] == 200
        assert view.get("/api/status", headers={"Cookie": name_value})[0] == 200
        # another port's cookie is not this view's
        assert view.get("/api/status", headers={"Cookie": f"facestream_token_1={TOKEN}"})[0] == 401
        assert view.get("/?token=wrong-token-of-enough-length")[0] == 401


@pytest.mark.parametrize("token", [" ", "short", "a" * 40, f" {TOKEN}"])
def test_a_weak_token_is_refused(tmp_path, token):
    config = tmp_path / "web.yaml"
    config.write_text(f"web:\n  token: {json.dumps(token)}\n")
    with pytest.raises(FacestreamError, match="web.token.*too weak"):
        load_config(config)
    os.environ["FACESTREAM_TEST_WEAK_TOKEN"] = token
    try:
        with pytest.raises(FacestreamError, match="too weak"):
            resolve_token("${FACESTREAM_TEST_WEAK_TOKEN}")
    finally:
        del os.environ["FACESTREAM_TEST_WEAK_TOKEN"]
    assert resolve_token(TOKEN) == TOKEN


def test_serve_with_a_weak_token_is_one_line(cli, tmp_path):
    config = tmp_path / "web.yaml"
    config.write_text('web:\n  token: " "\n')
    proc = cli("serve", "--gallery", tmp_path / "g.npz", "--config", config, "--http", str(free_port()), timeout=60)
    assert proc.returncode == 2
    assert_one_line_error(proc, "web.token", "too weak")


# -- smaller: the icon, the address line -----------------------------------------------------------

def test_the_favicon_is_an_icon(view):
    status, data, response = view.get("/favicon.ico")
    assert status == 200 and response.getheader("content-type") == "image/x-icon"
    assert data[:4] == b"\0\0\1\0" and data[22:30] == b"\x89PNG\r\n\x1a\n"


def test_bound_to_all_interfaces_the_address_says_so():
    server = WebServer(lambda *a: None, "0.0.0.0:0", token=TOKEN)
    try:
        assert server.where.startswith(f"all interfaces, port {server.port}")
        assert "127.0.0.1" not in server.where
    finally:
        server._sock.close()
    server = WebServer(lambda *a: None, "127.0.0.1:0", token=None)
    try:
        assert server.where == f"http://127.0.0.1:{server.port}/"
    finally:
        server._sock.close()


def test_a_connection_without_host_is_not_a_browser(tmp_path):
    for view in make_view(tmp_path):
        sock = socket.create_connection(("127.0.0.1", view.port), timeout=10)
        sock.sendall(b"GET /api/status HTTP/1.0\r\n\r\n")
        assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 200")
        sock.close()
        conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
        conn.putrequest("GET", "/api/status", skip_host=True)
        conn.putheader("Host", "[bad")
        conn.endheaders()
        assert conn.getresponse().status == 400
        conn.close()


def test_a_token_with_odd_characters_survives_the_cookie_and_the_redirect_stays_here(tmp_path):
    token = "a;b c=d%e,f\"g-0123456789"
    for view in make_view(tmp_path, token=token):
        from urllib.parse import quote

        status, _, response = view.get(f"//attacker.example/?token={quote(token)}")
        assert status == 303 and response.getheader("location") == "/attacker.example/"
        cookie = response.getheader("set-cookie").split("; ")[0]
        assert view.get("/api/status", headers={"Cookie": cookie})[0] == 200
