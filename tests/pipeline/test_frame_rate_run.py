"""`facestream run --fps N` end to end on real footage: real processes, MediaPipe, ONNX Runtime, FFmpeg.

The frames skipped for the rate are counted as skipped (never dropped or lost), every setting counted
in frames keeps its meaning in time, and recall and naming at 10 fps stay within 0.02 of 30 fps (the
figures: docs/benchmarks.md, ``tools/bench_frame_rate.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import media_path
from tools.bench_frame_rate import _pairs as match_faces
from tools.bench_frame_rate import (
    frames_processed,
    score_against_truth,
    tracks_by_frame,
)

pytestmark = pytest.mark.slow

CLIP, CLIP_FRAMES, CLIP_FPS = "short_hamilton_clip.mp4", 275, 29.97


@pytest.fixture(scope="module")
def runs(cli, gallery, tmp_path_factory):
    """run(video, *flags) -> (stderr, events, summary, tracks by frame), each run once per module."""
    out = tmp_path_factory.mktemp("runs")
    done: dict[tuple, tuple] = {}

    def run(video: Path, *flags: str):
        key = (str(video), flags)
        if key not in done:
            tag = f"{video.stem}-{len(done)}"
            events, summary, tracks = out / f"{tag}.jsonl", out / f"{tag}.json", out / f"{tag}.txt"
            proc = cli("run", "--source", video, "--gallery", gallery, "--events-out", events, "--summary-json",
                       summary, "--tracks-out", tracks, "--no-progress", *flags, check=True)
            done[key] = (proc.stderr, [json.loads(line) for line in events.read_text().splitlines()],
                         json.loads(summary.read_text()), tracks_by_frame(tracks))
        return done[key]

    return run


def lifecycle(events: list[dict]) -> list[tuple]:
    """What a run's events say, without what varies from run to run (times, seq, vote weights: how
    soon the publisher's feedback reaches the detect worker decides a few re-embeddings)."""
    return [(e["type"], e["track_id"], e.get("identity"), e["frame"], e.get("reason"))
            for e in events if e["type"] != "heartbeat"]


def test_at_10_fps_every_third_frame_is_processed_and_the_rest_counted_as_skipped(runs):
    stderr, events, summary, tracks = runs(media_path(CLIP), "--fps", "10")
    assert summary["frames"] == 92 and summary["skipped"] == CLIP_FRAMES - 92
    source = summary["per_source"]["short_hamilton_clip"]
    assert source["skipped"] == 183 and source["dropped"] == 0 and source["lost"] == 0, source
    assert summary["dropped"] == 0 and summary["lost"] == 0 and source["lost_frames"] == []
    assert "facestream: 92 frames" in stderr and "frames 183 skipped" in stderr and "Traceback" not in stderr
    # frame numbers and pts are the file's: the processed frames are on the rate's grid
    assert all(e["frame"] % 3 == 0 for e in events if e.get("frame") is not None and e["type"] != "track_ended")
    assert set(tracks) <= set(range(0, CLIP_FRAMES, 3))
    named = [e for e in events if e["type"] == "identity" and e["identity"] == "lin-manuel-miranda"]
    assert any(82 <= e["frame"] < 150 for e in named), "Lin-Manuel Miranda not named while he sings"
    ended = [e for e in events if e["type"] == "track_ended"]
    assert ended and all(e["pts"] == pytest.approx(e["frame"] / CLIP_FPS, abs=0.002) for e in ended)


def test_a_rate_at_or_above_the_source_s_changes_nothing(runs):
    _, every, summary, _ = runs(media_path(CLIP))
    _, at_30, summary_30, _ = runs(media_path(CLIP), "--fps", "30")
    assert summary["frames"] == summary_30["frames"] == CLIP_FRAMES
    assert summary["skipped"] == summary_30["skipped"] == 0
    assert lifecycle(at_30) == lifecycle(every)


def photo_scan_faces(frames: list[int]) -> dict[int, list[np.ndarray]]:
    """An independent reference for recall on the clip: each frame scanned whole, as a photo (every
    tile, each candidate verified), with no tracking to help or hurt either rate."""
    from stream.detect.config import DetectorConfig
    from stream.detect.scan import FaceDetector

    detector = FaceDetector(DetectorConfig()).load()
    cap = cv2.VideoCapture(str(media_path(CLIP)))
    out, wanted = {}, set(frames)
    try:
        for i in range(max(frames) + 1):
            ok, image = cap.read()
            assert ok
            if i in wanted:
                out[i] = list(detector.detect(image).xyxy)
    finally:
        cap.release()
        detector.close()
    return out


def recall(reference: dict[int, list[np.ndarray]], tracks) -> float:
    faces = sum(len(boxes) for boxes in reference.values())
    found = sum(len(match_faces(boxes, [box for box, _ in tracks.get(i, [])])) for i, boxes in reference.items())
    return found / faces


def test_recall_and_naming_at_10_fps_within_0_02_of_30_fps(runs, tmp_path):
    from tests.support.scenes import write_crossing_video

    # Two real faces crossing, known in every frame, then a hard cut: scored against the truth.
    video = tmp_path / "crossing.mp4"
    truth = write_crossing_video(video, fps=30)
    _, _, _, tracks_30 = runs(video)
    _, _, summary_10, tracks_10 = runs(video, "--fps", "10")
    frames_10 = frames_processed(summary_10, truth["frames"], 10.0, 30.0)
    full = score_against_truth(truth, tracks_30, list(range(truth["frames"])))
    tenth = score_against_truth(truth, tracks_10, frames_10)
    assert summary_10["skipped"] == truth["frames"] - len(frames_10)
    assert tenth["recall"] >= full["recall"] - 0.02 and tenth["naming"] >= full["naming"] - 0.02, (full, tenth)
    assert full["naming"] >= 0.9, full

    # The Hamilton clip: recall of the faces a whole-frame scan finds, on the frames 10 fps processed.
    _, _, summary, every = runs(media_path(CLIP))
    _, _, summary, ten = runs(media_path(CLIP), "--fps", "10")
    reference = photo_scan_faces(frames_processed(summary, CLIP_FRAMES, 10.0, CLIP_FPS))
    assert recall(reference, ten) >= recall(reference, every) - 0.02


def test_a_live_camera_at_5_fps(engines_dir, default_model, tmp_path):
    import os

    from tests.support.mjpeg_server import MjpegServer
    from tests.support.procs import run_until

    camera = MjpegServer(media_path(CLIP)).start()  # ~30 fps
    events, summary = tmp_path / "events.jsonl", tmp_path / "summary.json"
    config = tmp_path / "c.yaml"
    config.write_text("output:\n  heartbeat_s: 0.5\npipeline:\n  max_frame_width: 640\n  max_frame_height: 360\n")
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}

    def beats() -> list[dict]:
        lines = events.read_text().split("\n")[:-1] if events.exists() else []  # the lines written whole
        return [e["stats"] for e in map(json.loads, lines) if e["type"] == "heartbeat"]

    try:
        run_until(["run", "--source", f"cam={camera.url}#fps=5", "--config", str(config), "--events-out",
                   str(events), "--summary-json", str(summary), "--no-progress"],
                  lambda: any(b["frames"] >= 20 for b in beats()), 120, "20 frames", env, tmp_path / "stderr.txt")
    finally:
        camera.stop()
    cam = json.loads(summary.read_text())["per_source"]["cam"]
    # 5 of the camera's ~30 frames a second: the rest skipped, each frame counted once, as one kind
    assert cam["skipped"] >= 3 * (cam["frames"] + cam["dropped"]) and cam["lost"] == 0, cam
    # every frame up to the last one sent is one of the three (those grabbed after it, before the stop, too)
    assert cam["frames"] + cam["dropped"] + cam["skipped"] >= cam["read"] - 1, cam
    assert beats()[-1]["sources"]["cam"]["skipped"] > 0
