"""A live camera that sees nothing: its still frames are held back at the reader while the detect
worker finds the picture idle, counted as skipped, and a face that walks in is still found."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.pipeline.still import StillFrames
from tests.conftest import media_path


def _wall(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (0, 0), 6)
    return cv2.normalize(texture, None, 40, 200, cv2.NORM_MINMAX)


def test_still_frames_are_held_only_while_the_source_is_idle():
    wall = _wall()
    still = StillFrames(resend_s=5.0)
    assert not still.hold(wall, 0.0, idle=False)  # busy: every frame goes on
    assert not still.hold(wall, 0.1, idle=True)  # the first idle frame goes on: the reference
    noisy = np.clip(wall + np.random.default_rng(1).normal(0, 4, wall.shape), 0, 255).astype(np.uint8)
    assert still.hold(noisy, 0.2, idle=True)  # sensor noise is not motion
    assert still.hold((wall * 0.9).astype(np.uint8), 0.3, idle=True)  # nor a change of the light
    moved = wall.copy()
    moved[100:180, 300:360] = 255 - moved[100:180, 300:360]  # something the size of a face
    assert not still.hold(moved, 0.4, idle=True)
    assert still.hold(moved, 0.5, idle=True)  # compared with the last frame sent, now this one
    assert not still.hold(moved, 5.4, idle=True)  # resent: the detect worker's whole scan needs a frame
    assert not still.hold(moved, 5.5, idle=False)  # a track opened: nothing held
    assert not still.hold(moved, 5.6, idle=True)  # a new reference first
    assert still.held == 3


def _still_then_face(path: Path, still_frames: int = 150, face_frames: int = 90) -> None:
    wall = _wall()
    face = cv2.imread(str(media_path("obama.jpg")))
    face = cv2.resize(face, (140, int(140 * face.shape[0] / face.shape[1])))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 360))
    for i in range(still_frames + face_frames):
        image = wall.copy()
        if i >= still_frames:
            image[100:100 + face.shape[0], 250:390] = face
        writer.write(image)
    writer.release()


@pytest.mark.slow
def test_an_idle_live_camera_holds_its_still_frames_and_finds_a_face_that_walks_in(cli, engines_dir, tmp_path):
    from tests.support.mjpeg_server import MjpegServer
    from tests.support.procs import run_until

    clip = tmp_path / "still.mp4"
    _still_then_face(clip)
    gallery = tmp_path / "g.npz"
    cli("enroll", "--gallery", gallery, "--name", "obama", media_path("obama.jpg"), check=True)
    camera = MjpegServer(clip).start()
    events, summary = tmp_path / "events.jsonl", tmp_path / "summary.json"
    config = tmp_path / "c.yaml"
    config.write_text("output:\n  heartbeat_s: 0.5\n")
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}

    def read() -> list[dict]:  # the lines written whole so far (the run is writing the file)
        return [json.loads(line) for line in events.read_text().split("\n")[:-1]] if events.exists() else []

    def named_twice() -> bool:  # the face found on two of its entrances: held frames in between
        return sum(e["type"] == "identity" and e["identity"] == "obama" for e in read()) >= 2

    try:
        run_until(["run", "--source", f"cam={camera.url}", "--gallery", str(gallery), "--config", str(config),
                   "--events-out", str(events), "--summary-json", str(summary), "--no-progress"],
                  named_twice, 150, "the face named twice", env, tmp_path / "stderr.txt")
    finally:
        camera.stop()
    cam = json.loads(summary.read_text())["per_source"]["cam"]
    # the still part of each loop (5 of its 8 s) held back at the reader, counted as skipped, nothing lost
    assert cam["skipped"] > 60 and cam["lost"] == 0, cam
    assert cam["frames"] + cam["dropped"] + cam["skipped"] >= cam["read"] - 1, cam
