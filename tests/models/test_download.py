"""The checkpoint downloader against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from stream.errors import FacestreamError
from stream.models.download import download
from tests.support.http_files import serve_files

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def files():
    with serve_files({"ckpt.pt": PAYLOAD}) as state:
        yield state


@pytest.fixture
def server(files) -> str:
    return files.url("ckpt.pt")


def test_full_download_is_verified_and_atomic(server, tmp_path: Path):
    dest = download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "ckpt.pt.part").exists()


def test_interrupted_transfer_resumes_with_range(files, server, tmp_path: Path):
    files.cut_after = 300_000
    with pytest.raises(FacestreamError, match="run the same command again to resume"):
        download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    part = tmp_path / "ckpt.pt.part"
    assert part.stat().st_size == 300_000
    dest = download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert files.ranges == [None, "bytes=300000-"]


def test_server_without_range_restarts_from_zero(files, server, tmp_path: Path):
    files.honour_range = False
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


def test_already_downloaded_is_not_fetched_again(files, server, tmp_path: Path):
    (tmp_path / "ckpt.pt").write_bytes(PAYLOAD)
    download(server, tmp_path / "ckpt.pt", SHA, progress=False)
    assert files.ranges == []
