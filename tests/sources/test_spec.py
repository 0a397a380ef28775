from __future__ import annotations

import pytest

from stream.errors import FacestreamError
from stream.sources.spec import mask_credentials, parse_source, parse_sources


@pytest.mark.parametrize(
    ("text", "index", "name", "uri", "kind"),
    [
        ("clip.mp4", 0, "clip", "clip.mp4", "file"),
        ("videos/door cam.mp4", 1, "door_cam", "videos/door cam.mp4", "file"),
        ("file:///tmp/a.mkv", 0, "a", "/tmp/a.mkv", "file"),
        ("0", 2, "cam2", "0", "camera"),
        ("/dev/video1", 0, "cam0", "/dev/video1", "camera"),
        ("desk=0", 0, "desk", "0", "camera"),
        ("rtsp://10.0.0.5/s1", 3, "cam3", "rtsp://10.0.0.5/s1", "stream"),
        ("door=rtsp://u:p@10.0.0.5:554/s?x=1", 0, "door", "rtsp://u:p@10.0.0.5:554/s?x=1", "stream"),
        ("http://127.0.0.1:8080/video.mjpg", 0, "cam0", "http://127.0.0.1:8080/video.mjpg", "stream"),
        ("udp://127.0.0.1:5000", 0, "cam0", "udp://127.0.0.1:5000", "stream"),
        # a recorded video over HTTP is a file (every frame, ends at its end); a playlist stays a stream
        ("http://127.0.0.1:8080/clips/door.mp4", 0, "door", "http://127.0.0.1:8080/clips/door.mp4", "file"),
        ("https://h/v/Lobby.MKV?sig=a.b", 1, "Lobby", "https://h/v/Lobby.MKV?sig=a.b", "file"),
        ("http://127.0.0.1:8080/live/index.m3u8", 0, "cam0", "http://127.0.0.1:8080/live/index.m3u8", "stream"),
    ],
)
def test_parse_source(text, index, name, uri, kind):
    spec = parse_source(text, index)
    assert (spec.name, spec.uri, spec.kind) == (name, uri, kind)
    assert spec.live == (kind != "file")
    assert spec.remote == (kind == "file" and "://" in uri)


@pytest.mark.parametrize(("text", "needle"), [("=foo.mp4", "empty name"), ("cam1=", "nothing after the name"),
                                               ("gopher://x/y", "unsupported source scheme")])
def test_bad_sources(text, needle):
    with pytest.raises(FacestreamError, match=needle):
        parse_source(text, 0)


def test_duplicate_names_are_refused():
    with pytest.raises(FacestreamError, match="two sources are named 'clip'"):
        parse_sources(["a/clip.mp4", "b/clip.mp4"])
    assert [s.name for s in parse_sources(["x=a/clip.mp4", "b/clip.mp4"])] == ["x", "clip"]


def test_credentials_are_masked():
    assert mask_credentials("rtsp://admin:secret@10.0.0.5:554/s") == "rtsp://admin:***@10.0.0.5:554/s"
    assert mask_credentials("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"
    assert "secret" not in parse_source("rtsp://admin:secret@h/s", 0).display
