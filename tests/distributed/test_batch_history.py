"""`facestream site batch --history` on a real local multi-node Ray cluster: two short clips (the two
halves of the Hamilton clip) recognised as Ray tasks fill one SQLite history store on the driver;
`facestream history` lists the people with their videos and times (each file's start plus the pts)
and `facestream search` finds each person by photo there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from stream.history.store import HistoryStore
from tests.conftest import REPO, media_path
from tests.support.scenes import clip_frames

pytestmark = pytest.mark.slow

LIN, ALEX = "lin-manuel-miranda", "alex-lacamoire"
STARTS = {"first": 1_777_626_000, "second": 1_777_626_000 + 3600}  # the files' modification times


def write_clip(path: Path, frames: list) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    for image in frames:
        writer.write(image)
    writer.release()


def test_a_batch_over_two_clips_fills_one_history_store(ray_cluster, cli, engines_dir, tmp_path):
    cluster, _ = ray_cluster
    gallery = tmp_path / "people.npz"
    for name in (LIN, ALEX):
        cli("enroll", "--gallery", gallery, "--name", name, media_path(f"{name}.png"), check=True)
    frames = [image for _, image in clip_frames()]
    videos = tmp_path / "videos"
    videos.mkdir()
    half = len(frames) // 2
    for name, part in (("first", frames[:half]), ("second", frames[half:])):
        write_clip(videos / f"{name}.mp4", part)
        os.utime(videos / f"{name}.mp4", (STARTS[name], STARTS[name]))
    config = tmp_path / "batch.yaml"
    config.write_text("history:\n  file_start: mtime\n")
    db = tmp_path / "site-history.db"
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    args = [sys.executable, "-m", "stream", "site", "batch", "--address", cluster.address, str(videos),
            "--out", str(tmp_path / "out"), "--gallery", str(gallery), "--config", str(config),
            "--history", str(db), "--no-progress"]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 video(s): 2 done, 0 already done, 0 failed" in proc.stderr

    with HistoryStore.open(db, create=False) as store:
        rows = store.tracks()
        assert {r.video for r in rows} == {str((videos / f"{n}.mp4").resolve()) for n in STARTS}
        for r in rows:  # time = the file's start + the pts
            start = STARTS[r.source]
            assert abs(r.started_at - (start + r.start_pts)) < 1e-3 and r.start_pts < half / 25 + 1
        runs = store.runs()
        assert len(runs) == 2 and {r.kind for r in runs} == {"archive"}
        written = len(rows)
    assert f"history: {written} track(s) written" in proc.stderr

    listed = cli("history", "--history", db, "--tracks", "--json", check=True)
    tracks = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    people = {(t["identity"], t["source"]) for t in tracks if t["identity"]}
    assert {who for who, _ in people} == {LIN, ALEX}, people
    assert {source for _, source in people} == set(STARTS)

    for who, other in ((LIN, ALEX), (ALEX, LIN)):
        found = cli("search", media_path(f"{who}.png"), "--history", db, "--json", check=True)
        hits = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
        assert hits and {h["identity"] for h in hits} == {who}, (who, [(h["identity"], h["camera"]) for h in hits])
        assert all(h["video"] and h["video"].endswith(f"{h['camera']}.mp4") for h in hits)
        assert other not in {h["identity"] for h in hits}

    # a re-run skips both videos and writes nothing twice
    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 done, 2 already done" in again.stderr
    with HistoryStore.open(db, create=False) as store:
        assert store.count() == written


def test_a_store_that_is_not_one_is_refused_before_any_task(cli, tmp_path):
    from tests.conftest import assert_one_line_error

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"never read")
    proc = cli("site", "batch", videos, "--out", tmp_path / "out", "--history", "mysql://db/history")
    assert_one_line_error(proc, "mysql://db/history", "not a history store")
    assert not (tmp_path / "out").exists()
