"""The motion gate: an idle camera's frames never reach the detector; a face entering is found at once."""

from __future__ import annotations

from itertools import islice

import cv2
import numpy as np
import pytest

from stream.config.schema import AppConfig
from stream.detect.merge import overlap_of_smaller
from stream.detect.motion import MotionGate, StreamClock, moved
from stream.detect.scan import FaceDetector
from stream.track.scene import SceneCutDetector
from tests.support.scenes import clip_frames, head_patch, textured_background

SIZE = (640, 360)


def _gray(image: np.ndarray) -> np.ndarray:
    scenes = SceneCutDetector()
    scenes.is_cut(image)
    return scenes.gray


def _background(seed: int = 3) -> np.ndarray:
    return textured_background(*SIZE, np.random.default_rng(seed), noise=3.0)


def _noisy(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


# -- the gate on its own -------------------------------------------------------------------------

def test_still_frames_are_skipped_until_something_moves_or_the_picture_goes_stale():
    still = np.full((180, 320), 100, np.int16)
    gate = MotionGate(rescan_s=5.0)
    assert gate.decide(still, 0.0) == "full"  # nothing known yet
    gate.scanned(still, 0.0)
    assert gate.decide(still + 1, 0.1) == "skip"
    changed = still.copy()
    changed[50:60, 100:108] += 40  # something the size of a small face
    assert gate.decide(changed, 0.2) == "look"
    assert gate.decide(changed, 0.3) == "look"  # compared with the last whole scan: not all tiles saw it yet
    gate.scanned(changed, 0.3)
    assert gate.decide(changed, 0.4) == "skip"
    assert gate.decide(changed, 0.5, tracked=True) == "look"
    assert gate.decide(changed, 0.6, force=True) == "full"  # a scene cut
    assert gate.decide(changed, 5.29) == "skip"
    assert gate.decide(changed, 5.3) == "rescan"  # the periodic look at a still picture
    assert gate.decide(changed, 9.0, tracked=True) == "look"  # tracked faces get their closer looks only
    assert gate.decide(changed, 0.1) == "full"  # the stream's time went back: a new stream
    assert gate.skipped == 3


def test_every_tile_of_a_still_picture_is_scanned_again_only_every_every_tile_s():
    still = np.full((180, 320), 100, np.int16)
    gate = MotionGate(rescan_s=5.0, every_tile_s=12.0)
    assert gate.decide(still, 0.0) == "full"
    gate.scanned(still, 0.0)
    assert gate.decide(still, 5.0) == "rescan"  # the tiles that changed, where a track was lost
    gate.scanned(still, 5.0, every_tile=False)
    assert gate.decide(still, 10.0) == "rescan"
    gate.scanned(still, 10.0, every_tile=False)
    assert gate.decide(still, 14.9) == "skip"
    assert gate.decide(still, 15.0) == "full"  # 15 s since every tile was looked at


def test_a_change_of_light_is_not_motion_but_a_face_under_it_is():
    patch = cv2.resize(head_patch("obama.jpg")[0], (48, 64))
    # The clip's stage lights clip when brightened (each colour on its own): only darker or shifted there.
    for image, changes in ((_background(), ((1.15, 0), (0.85, 0), (1.0, 20), (1.0, -20), (1.1, 10))),
                           (clip_frame(0), ((0.85, 0), (1.0, 20), (1.0, -20)))):
        gray = _gray(image)
        for gain, offset in changes:
            lit = np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
            assert not moved(_gray(lit), gray), (gain, offset)
            lit[40:104, 300:348] = patch
            assert moved(_gray(lit), gray), (gain, offset)


def test_camera_and_compression_noise_are_not_motion():
    rng = np.random.default_rng(0)
    for image in (_background(), clip_frame(0)):
        reference = _gray(_noisy(image, rng, 5.0))
        for _ in range(10):
            assert not moved(_gray(_noisy(image, rng, 5.0)), reference)  # sensor noise, sigma 5 levels
        for quality in (30, 60, 90):  # each frame compressed on its own: blocks move differently
            ok, jpeg = cv2.imencode(".jpg", _noisy(image, rng, 2.0), [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok and not moved(_gray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)), reference), quality


def test_the_stream_clock_follows_pts_or_else_the_capture_time():
    clock = StreamClock()
    assert [clock.advance(p, c) for p, c in ((0.0, 100.0), (0.1, 100.1), (0.2, 100.2))] == pytest.approx([0, 0.1, 0.2])
    assert clock.advance(0.0, 100.5) == pytest.approx(0.5)  # pts stuck (a camera without a frame rate)
    assert clock.advance(0.0, 100.4) == pytest.approx(0.5)  # never back


def clip_frame(index: int) -> np.ndarray:
    return next(islice(clip_frames(), index, None))[1]


# -- in the detect worker's per-source stage, with the real detector --------------------------------

@pytest.fixture(scope="module")
def detector(engines_dir):
    with FaceDetector(AppConfig().detector) as det:
        det.load()
        yield det


def _video(gate: bool = True, rescan_s: float = 5.0, full_rescan_s: float = 120.0):
    from stream.pipeline.workers import VideoFaces

    cfg = AppConfig()
    cfg.detector.motion_gate = gate
    cfg.detector.idle_rescan_s = rescan_s
    cfg.detector.idle_full_rescan_s = full_rescan_s
    return VideoFaces(cfg)


def _calls_per_frame(video, detector, frames, fps: float = 10.0) -> tuple[list[int], list]:
    calls, found = [], []
    for i, image in enumerate(frames):
        before = detector.calls
        found.append(video.detect(image, i, detector, pts=i / fps)[0])
        calls.append(detector.calls - before)
    return calls, found


@pytest.mark.slow
def test_a_still_empty_picture_never_reaches_the_detector_even_with_noise(detector):
    rng = np.random.default_rng(1)
    background = _background()
    frames = [_noisy(background, rng, 3.0) for _ in range(45)]
    calls, found = _calls_per_frame(_video(), detector, frames)
    assert calls[0] > 0 and sum(calls[1:]) == 0, calls  # 4.5 s at 10 fps, under idle_rescan_s
    assert not any(len(f) for f in found)
    calls_off, _ = _calls_per_frame(_video(gate=False), detector, frames)
    assert sum(calls_off[1:]) > 0  # without the gate the still tiles are rescanned after 40 frames, as before


def _entering(x_from: int, step: int, still: int, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``still`` frames of a noisy background, then Obama's head walking in from the left edge."""
    rng = np.random.default_rng(2)
    background = _background()
    crop, box = head_patch("obama.jpg")
    s = 70 / float(box[2] - box[0])  # a 70 px face
    patch = cv2.resize(crop, (round(crop.shape[1] * s), round(crop.shape[0] * s)), interpolation=cv2.INTER_AREA)
    box = box * s
    frames, truth = [], []
    for i in range(still + count):
        image = background.copy()
        face = None
        if i >= still:
            x, y = x_from + step * (i - still), 120
            x0 = max(0, x)
            image[y:y + patch.shape[0], x0:x + patch.shape[1]] = patch[:, x0 - x:]
            face = box + np.array([x, y, x, y], np.float32)
        frames.append(_noisy(image, rng, 2.0))
        truth.append(face)
    return frames, truth


@pytest.mark.slow
def test_a_face_entering_a_still_picture_is_found_within_three_frames(detector):
    still = 20
    frames, truth = _entering(x_from=-110, step=25, still=still, count=8)
    video = _video()
    calls, found = _calls_per_frame(video, detector, frames)
    assert sum(calls[1:still]) == 0  # idle until it enters
    first = next(i for i, f in enumerate(found) if len(f))
    assert still <= first <= still + 2, (first, calls)
    assert overlap_of_smaller(found[first].xyxy, truth[first][None]).max() >= 0.5
    assert all(len(f) for f in found[first:])  # tracked from there on: a closer look every frame
    assert all(c > 0 for c in calls[first:])


@pytest.mark.slow
def test_a_still_face_whose_track_ended_is_found_again_within_idle_rescan_s(detector):
    frames, _ = _entering(x_from=200, step=0, still=0, count=60)  # it stands there from frame 0
    fps, rescan_s = 10.0, 2.0
    video = _video(rescan_s=rescan_s)
    found = [video.detect(frames[i], i, detector, pts=i / fps)[0] for i in range(5)]
    assert all(len(f) for f in found)
    video.tracks_ended(video.tracker.end_all(reason="lost"))  # as if the detector had missed it for max_age frames
    calls, again = [], None
    for i in range(5, 60):
        before = detector.calls
        faces = video.detect(frames[i], i, detector, pts=i / fps)[0]
        calls.append(detector.calls - before)
        if len(faces):
            again = i
            break
    assert again is not None and again / fps - 4 / fps <= rescan_s + 1 / fps, again
    assert sum(calls[:-1]) == 0  # in between, the still picture cost no detector call


@pytest.mark.slow
def test_an_idle_pictures_rescans_look_at_what_changed_and_at_every_tile_only_rarely(detector):
    """The periodic scans of a still picture: nothing changed, no tile looked at; a change of the light
    (not motion: the gate skips those frames) has its tiles looked at the next time; every tile at
    ``idle_full_rescan_s``."""
    rng = np.random.default_rng(5)
    background = _background()
    darker = (background * 0.8).astype(np.uint8)
    frames = [_noisy(background if i < 25 else darker, rng, 2.0) for i in range(71)]
    video = _video(rescan_s=2.0, full_rescan_s=6.0)
    calls, _ = _calls_per_frame(video, detector, frames)  # 10 fps: rescans at frames 20, 40, 60
    tiles = calls[0]
    assert tiles > 1  # the first frame: every tile
    assert sum(calls[1:20]) == 0 and calls[20] == 0  # still: its first rescan looks at nothing
    assert sum(calls[21:40]) == 0  # the light changed at 25: not motion
    assert calls[40] > 0  # ...but its tiles changed since their last look: looked at again
    assert sum(calls[41:60]) == 0
    assert calls[60] == tiles  # 6 s after the first frame: every tile, changed or not


@pytest.mark.slow
def test_with_faces_in_view_the_gate_changes_nothing(detector):
    frames = [image for _, image in islice(clip_frames(), 0, 40)]
    on_calls, on = _calls_per_frame(_video(gate=True), detector, frames, fps=30)
    off_calls, off = _calls_per_frame(_video(gate=False), detector, frames, fps=30)
    assert sum(len(f) for f in on) > 0
    assert [len(f) for f in on] == [len(f) for f in off]
    assert on_calls == off_calls
    for a, b in zip(on, off):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
