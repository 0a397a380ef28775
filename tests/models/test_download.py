"""The checkpoint downloader against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from stream.errors import FacestreamError
from stream.models.download import download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    honour_range = True
    cut_after: int | None = None  # drop the connection after this many bytes (once)
    requests: list[str | None] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        if not self.path.endswith("/ckpt.pt"):
            self.send_error(404)
            return
        cls.requests.append(self.headers.get("Range"))
        start = 0
        if cls.honour_range and self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cls.cut_after is not None:
            self.wfile.write(body[: cls.cut_after])
            cls.cut_after = None
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    Handler.honour_range, Handler.cut_after, Handler.requests = True, None, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ckpt.pt"
    httpd.shutdown()
    httpd.server_close()


def test_full_download_is_verified_and_atomic(server, tmp_path: Path):
    dest = download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "ckpt.pt.part").exists()


def test_interrupted_transfer_resumes_with_range(server, tmp_path: Path):
    Handler.cut_after = 300_000
    with pytest.raises(FacestreamError, match="run the same command again to resume"):
        download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    part = tmp_path / "ckpt.pt.part"
    assert part.stat().st_size == 300_000
    dest = download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [None, "bytes=300000-"]


def test_server_without_range_restarts_from_zero(server, tmp_path: Path):
    Handler.honour_range = False
    (tmp_path / "ckpt.pt.part").write_bytes(PAYLOAD[:1000])
    dest = download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_hash_mismatch_deletes_the_partial_file(server, tmp_path: Path):
    with pytest.raises(FacestreamError, match="does not match the pinned"):
        download(server, tmp_path / "ckpt.pt", "0" * 64, progress=False)
    assert not (tmp_path / "ckpt.pt").exists() and not (tmp_path / "ckpt.pt.part").exists()


def test_unpinned_needs_consent(server, tmp_path: Path):
    with pytest.raises(FacestreamError, match="no pinned sha256"):
        download(server, tmp_path / "ckpt.pt", None, progress=False)
    assert download(server, tmp_path / "ckpt.pt", None, progress=False, allow_unpinned=True).is_file()


def test_unreachable_host_is_one_line(tmp_path: Path):
    with pytest.raises(FacestreamError, match="cannot reach 127.0.0.1:9: .*import-facenet FILE"):
        download("http://127.0.0.1:9/ckpt.pt", tmp_path / "ckpt.pt", SHA, timeout=2, progress=False)


def test_http_error(server, tmp_path: Path):
    with pytest.raises(FacestreamError, match="HTTP 404"):
        download(server.replace("ckpt.pt", "missing"), tmp_path / "ckpt.pt", SHA, progress=False)


def test_already_downloaded_is_not_fetched_again(server, tmp_path: Path):
    (tmp_path / "ckpt.pt").write_bytes(PAYLOAD)
    download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert Handler.requests == []
