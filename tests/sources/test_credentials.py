"""Secrets in source URLs: every form masked for display, ${VAR} expanded from the environment."""

from __future__ import annotations

import pytest

from stream.errors import FacestreamError
from stream.sources.credentials import expand_env, mask_text, split_url, url_path
from stream.sources.spec import mask_credentials, parse_source


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("rtsp://admin:secret@10.0.0.5:554/s", "rtsp://admin:***@10.0.0.5:554/s"),
        # unencoded '#', '/', '?' and '@' in the password: the userinfo ends at the last '@' before a host
        ("rtsp://admin:pa#s/s?w@rd@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
        ("rtsp://admin:pa#ss@10.0.0.5/live", "rtsp://admin:***@10.0.0.5/live"),
        ("rtsp://admin:pa/ss@cam.local/live", "rtsp://admin:***@cam.local/live"),
        ("rtsp://admin:pa?ss@cam.local:8554", "rtsp://admin:***@cam.local:8554"),
        ("rtsp://admin:p@ss@10.0.0.5/live", "rtsp://admin:***@10.0.0.5/live"),
        ("rtsp://admin:@@10.0.0.5/live", "rtsp://admin:***@10.0.0.5/live"),
        ("rtsp://u:p@[fe80::1%25eth0]:554/x", "rtsp://u:***@[fe80::1%25eth0]:554/x"),
        ("RTSP://u:p@[::1]/x?y=1#z", "RTSP://u:***@[::1]/x?y=1#z"),
        ("http://u:p@host?x", "http://u:***@host?x"),
        # a user without a password keeps its name; '@' elsewhere is not userinfo
        ("rtsp://admin@10.0.0.5/live", "rtsp://admin@10.0.0.5/live"),
        ("http://cam/x?email=a@b.com", "http://cam/x?email=a@b.com"),
        ("http://cam/a@b/c", "http://cam/a@b/c"),
        ("udp://@:5000", "udp://@:5000"),
        ("udp://@239.0.0.1:1234", "udp://@239.0.0.1:1234"),
        # well-known secret query parameters, case-insensitive
        ("http://cam/video.mjpg?user=admin&password=hunter2", "http://cam/video.mjpg?user=admin&password=***"),
        ("http://cam/v?PASS=1&Passwd=2&pwd=3&Token=4", "http://cam/v?PASS=***&Passwd=***&pwd=***&Token=***"),
        ("http://cam/v?access_token=1&key=2&api_key=3&apikey=4&api-key=5",
         "http://cam/v?access_token=***&key=***&api_key=***&apikey=***&api-key=***"),
        ("https://h/v/Lobby.MKV?auth=1&secret=2&signature=3&sig=a.b#t=5",
         "https://h/v/Lobby.MKV?auth=***&secret=***&signature=***&sig=***#t=5"),
        ("srt://10.0.0.5:9000?mode=caller&passphrase=0123456789", "srt://10.0.0.5:9000?mode=caller&passphrase=***"),
        ("http://u:p#w@cam/v?token=abc", "http://u:***@cam/v?token=***"),
        ("http://cam/v?user=admin&keyframes=2&password=", "http://cam/v?user=admin&keyframes=2&password="),
        # a URL after a name or an option (a command-line argument)
        ("door=rtsp://admin:secret@h/live", "door=rtsp://admin:***@h/live"),
        ("--source=door=rtsp://admin:secret@h/live?token=t", "--source=door=rtsp://admin:***@h/live?token=***"),
        # nothing to mask
        ("rtsp://10.0.0.5/s", "rtsp://10.0.0.5/s"),
        ("tcp://*:5556", "tcp://*:5556"),
        ("clip.mp4", "clip.mp4"),
        ("videos/door cam:2@night.mp4", "videos/door cam:2@night.mp4"),
        ("/tmp/a?password=b.mp4", "/tmp/a?password=b.mp4"),
        ("0", "0"),
        ("/dev/video1", "/dev/video1"),
        ("", ""),
    ],
)
def test_mask_credentials(uri, shown):
    assert mask_credentials(uri) == shown
    assert mask_credentials(shown) == shown  # masking is idempotent


@pytest.mark.parametrize("secret", ["hunter2", "pa#s/s?w@rd", "p@ss:word"])
def test_the_secret_never_reaches_display_or_repr(secret):
    for text in (f"door=rtsp://admin:{secret}@10.0.0.5:554/live", f"http://10.0.0.5/v.mjpg?password={secret}"):
        spec = parse_source(text, 0)
        assert secret not in spec.display and secret not in repr(spec), spec.display


def test_split_url_finds_host_and_path_behind_an_unencoded_password():
    parts = split_url("http://admin:pa#s/s?w@rd@10.0.0.5:8080/clips/door.mp4?x=1#f")
    assert parts is not None
    assert (parts.userinfo, parts.host_port, parts.path, parts.query) == ("admin:pa#s/s?w@rd", "10.0.0.5:8080",
                                                                          "/clips/door.mp4", "x=1")
    assert split_url("clip.mp4") is None and url_path("clip.mp4") == "clip.mp4"
    # urlsplit would see no path here (it ends the authority at '#'): the kind and the name need it
    spec = parse_source("http://admin:pa#ss@10.0.0.5/clips/door.mp4", 0)
    assert (spec.kind, spec.name) == ("file", "door")


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "S3cret#/?@")
    monkeypatch.setenv("CAM_HOST", "10.0.0.5")
    spec = parse_source("door=rtsp://admin:${CAM_PASSWORD}@${CAM_HOST}:554/live", 0)
    assert spec.uri == "rtsp://admin:S3cret#/?@@10.0.0.5:554/live"
    assert (spec.name, spec.kind) == ("door", "stream")
    assert spec.display == "rtsp://admin:***@10.0.0.5:554/live"
    # the whole URL from a variable: its kind is that of the value
    monkeypatch.setenv("DOOR_URL", "rtsp://admin:x@10.0.0.5/live")
    assert parse_source("${DOOR_URL}", 3).kind == "stream"


@pytest.mark.parametrize("text", ["rtsp://h/$CAM_PASSWORD", "rtsp://h/$$", "rtsp://h/$${CAM_PASSWORD}",
                                  "rtsp://h/${1X}", "rtsp://h/${}", "rtsp://h/${A-B}", "clip$1.mp4"])
def test_only_braced_names_are_expanded(monkeypatch, text):
    monkeypatch.setenv("CAM_PASSWORD", "secret")
    assert expand_env(text, "x") == text


def test_an_unset_variable_is_one_line_naming_source_and_variable(monkeypatch):
    monkeypatch.delenv("FACESTREAM_NO_SUCH_VAR", raising=False)
    with pytest.raises(FacestreamError) as info:
        parse_source("door=rtsp://admin:hunter2@h/live?u=${FACESTREAM_NO_SUCH_VAR}", 0)
    message = str(info.value)
    assert "\n" not in message and "hunter2" not in message
    assert "door=rtsp://admin:***@h/live" in message and "FACESTREAM_NO_SUCH_VAR is not set" in message


@pytest.mark.parametrize("text", ["=rtsp://admin:hunter2@h/live", "gopher://admin:hunter2@h/x"])
def test_parse_errors_mask_the_source(text):
    with pytest.raises(FacestreamError) as info:
        parse_source(text, 0)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_mask_text_masks_every_url_in_a_message():
    message = "unrecognized arguments: 'rtsp://u:hunter2@h:554/x', (http://h/v?token=hunter2) and clip.mp4"
    assert mask_text(message) == "unrecognized arguments: 'rtsp://u:***@h:554/x', (http://h/v?token=***) and clip.mp4"


@pytest.mark.parametrize("typed, shown", [
    ("rtsp://admin:S3cret@ca m/live", "rtsp://admin:***@ca m/live"),  # a host that is not one
    ("rtsp://admin:pa/ss@bad host/live", "rtsp://admin:***@bad host/live"),
    ("http://h/x?email=a@b.com", "http://h/x?email=a@b.com"),  # no user:password shape: left alone
])
def test_a_password_before_a_malformed_host_is_still_masked(typed, shown):
    assert mask_credentials(typed) == shown
