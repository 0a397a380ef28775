"""The processing rate (sources.fps): which frames are taken, by their timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.sources.rate import ASSUMED_FPS, FrameRate, frame_step, parse_fps
from stream.sources.spec import parse_source, parse_sources


def taken(times, fps: float) -> list[int]:
    rate = FrameRate(fps)
    return [i for i, t in enumerate(times) if rate.take(t)]


@pytest.mark.parametrize(("source_fps", "fps", "expected"), [
    (30.0, 10.0, list(range(0, 30, 3))),
    (29.97, 10.0, list(range(0, 30, 3))),
    (30.0, 15.0, list(range(0, 30, 2))),
    (30.0, 30.0, list(range(30))),  # the source's own rate: every frame
    (30.0, 60.0, list(range(30))),  # faster than the source: every frame
    (5.0, 10.0, list(range(30))),  # a source slower than the rate gives every frame
])
def test_frames_are_taken_evenly(source_fps, fps, expected):
    assert taken([i / source_fps for i in range(30)], fps) == expected


def test_a_rate_that_does_not_divide_the_source_s_is_kept_on_average():
    times = [i / 25.0 for i in range(250)]  # 10 s at 25 fps
    picked = np.array(taken(times, 10.0))
    gaps = np.diff(picked)
    assert len(picked) == 100  # 10 a second
    assert set(gaps.tolist()) <= {2, 3}  # each the frame nearest its tick: 80 or 120 ms apart


def test_variable_frame_rate_is_sampled_evenly_in_time():
    rng = np.random.default_rng(3)
    # 20 s of a phone video: 20-40 ms between frames, and one 1.5 s freeze
    gaps = rng.uniform(0.02, 0.04, 700)
    gaps[300] = 1.5
    times = np.cumsum(gaps)
    picked = times[taken(times.tolist(), 5.0)]
    spacing = np.diff(picked)
    assert abs(len(picked) - (times[-1] - times[0] - 1.5) * 5) <= 3  # 5 a second of video, none for the freeze
    assert np.all(spacing[spacing < 1.0] > 0.2 - 0.04)  # never closer than one tick less half a frame gap
    assert np.median(spacing) == pytest.approx(0.2, abs=0.02)
    # after the freeze the grid starts again at the first frame, with no burst to catch up
    after = picked[picked > times[299]]
    assert after[0] == times[300] and after[1] - after[0] > 0.15


def test_time_that_goes_back_starts_again():
    rate = FrameRate(10.0)
    assert [rate.take(t) for t in (5.0, 5.05, 5.1, 0.0, 0.05, 0.1)] == [True, False, True, True, False, True]


def test_frame_step():
    assert frame_step(None, 30.0) == 1.0
    assert frame_step(10.0, 30.0) == 3.0
    assert frame_step(10.0, 25.0) == 2.5
    assert frame_step(60.0, 30.0) == 1.0  # never below one frame
    assert frame_step(10.0, 0.0) == ASSUMED_FPS / 10.0  # a camera that does not say its rate


@pytest.mark.parametrize("text", ["0", "-5", "x", "", "nan", "inf", "2000"])
def test_bad_rates_are_one_line_errors(text):
    with pytest.raises(FacestreamError, match="fps must be a number of frames a second") as err:
        parse_fps(text, "--source 'a.mp4#fps=...'")
    assert "\n" not in str(err.value)


def test_a_source_s_own_rate():
    spec = parse_source("door=rtsp://10.0.0.5/live#fps=5", 0)
    assert (spec.name, spec.uri, spec.kind, spec.fps) == ("door", "rtsp://10.0.0.5/live", "stream", 5.0)
    assert spec.rate(10.0) == 5.0
    assert parse_source("clip.mp4#FPS=7.5", 0).fps == 7.5
    plain = parse_source("rtsp://10.0.0.5/live", 0)
    assert plain.fps is None and plain.rate(10.0) == 10.0 and plain.rate(None) is None


def test_only_the_exact_suffix_is_a_rate():
    for text in ("take#2.mp4", "clip.mp4#t=10", "http://h/x.mjpg#fps"):
        spec = parse_source(text, 0)
        assert spec.fps is None and spec.uri == text


def test_a_bad_rate_names_the_source():
    with pytest.raises(FacestreamError) as err:
        parse_sources(["cam=rtsp://u:secret@h/x#fps=fast"])
    message = str(err.value)
    assert message.startswith("--source 'cam=rtsp://u:***@h/x#fps=fast'") and "secret" not in message
    assert "'fast'" in message


def test_a_site_camera_keeps_its_rate_in_its_shard(monkeypatch):
    from stream.distributed.site import SiteConfig, site_shards

    site = SiteConfig(cameras=["door=rtsp://u:${PW}@10.0.0.21/s1#fps=5", "http://10.0.0.30/yard.mjpg#fps=2.5"],
                      sources={"fps": 10})
    (_, cameras), = site_shards(site)
    assert cameras == ["door=rtsp://u:${PW}@10.0.0.21/s1#fps=5", "cam1=http://10.0.0.30/yard.mjpg#fps=2.5"]
    monkeypatch.setenv("PW", "secret")  # expanded on the node that runs the shard
    assert [parse_source(c, 0).rate(site.sources.fps) for c in cameras] == [5.0, 2.5]
    assert site.pipeline_config()["sources"]["fps"] == 10
