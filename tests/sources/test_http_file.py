"""A recorded video served over HTTP from 127.0.0.1 (a real server, real FFmpeg): read as a file."""

from __future__ import annotations

import pytest

from stream.errors import FacestreamError
from stream.sources.file import FileSource
from stream.sources.spec import parse_source
from tests.conftest import media_path
from tests.support.http_files import serve_files


@pytest.fixture
def served_clip():
    with serve_files({"short_hamilton_clip.mp4": media_path("short_hamilton_clip.mp4").read_bytes()}) as server:
        yield server


def read_all(source: FileSource, on_frame=lambda n: None) -> int:
    source.open()
    n = 0
    try:
        while source.read() is not None:
            n += 1
            on_frame(n)
    finally:
        source.close()
    return n


def test_every_frame_of_a_served_file_is_read_and_it_ends(served_clip):
    spec = parse_source(served_clip.url("short_hamilton_clip.mp4"), 0)
    assert (spec.kind, spec.live, spec.name) == ("file", False, "short_hamilton_clip")
    source = FileSource(spec, read_timeout_s=2)
    assert read_all(source) == 275
    assert source.frame_count == 275 and source.stats.last_error is None


def test_a_server_that_goes_away_is_an_error_not_the_end(served_clip):
    served_clip.bytes_per_s = 1e6  # so FFmpeg cannot have the whole file buffered before it goes
    source = FileSource(parse_source(served_clip.url("short_hamilton_clip.mp4"), 0), read_timeout_s=2)

    def vanish(n: int) -> None:
        if n == 40:
            served_clip.gone = True

    with pytest.raises(FacestreamError, match=r"short_hamilton_clip.mp4: the connection ended after frame \d+ of 275"):
        read_all(source, vanish)


def test_a_url_that_is_not_a_video_is_one_line(served_clip):
    source = FileSource(parse_source(served_clip.url("missing.mp4"), 0), open_timeout_s=2)
    with pytest.raises(FacestreamError, match="missing.mp4: cannot connect, or not a video"):
        source.open()
