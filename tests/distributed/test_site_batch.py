"""`facestream site batch` on a real local multi-node Ray cluster: four copies of the Hamilton clip
give the events a local run gives, on more than one node, and a re-run skips them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, media_path

pytestmark = pytest.mark.slow


def _what_happened(events: list[dict]) -> list[tuple]:
    """The run's story without wall-clock times: which tracks started and ended where, and who they were."""
    return sorted({(e["type"], e["track_id"], e["identity"], e.get("reason"))
                   for e in events if e["type"] in ("track_started", "track_ended")})


def _named(events: list[dict]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for e in events:
        if e["type"] == "identity" and e["identity"]:
            out.setdefault(e["track_id"], set()).add(e["identity"])
    return out


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_four_videos_on_two_nodes_match_local_runs_and_a_rerun_skips_them(ray_cluster, cli, engines_dir, tmp_path):
    cluster, _ = ray_cluster
    clip = media_path("short_hamilton_clip.mp4")
    gallery = tmp_path / "people.npz"
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        cli("enroll", "--gallery", gallery, "--name", name, media_path(f"{name}.png"), check=True)
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(4):
        shutil.copy(clip, videos / f"hamilton-{k}.mp4")
    (videos / "notes.txt").write_text("not a video: not picked up from a folder")
    local = tmp_path / "local.jsonl"
    cli("run", "--source", clip, "--gallery", gallery, "--events-out", local, "--no-progress", check=True)
    reference = _read(local)

    out = tmp_path / "out"
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    args = [sys.executable, "-m", "stream", "site", "batch", "--address", cluster.address, str(videos),
            "--out", str(out), "--gallery", str(gallery), "--no-progress"]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 video(s): 4 done, 0 already done, 0 failed" in proc.stderr
    nodes = set()
    for k in range(4):
        name = f"hamilton-{k}"
        events = _read(out / f"{name}.events.jsonl")
        assert _what_happened(events) == _what_happened(reference), name
        assert _named(events) == _named(reference), name
        summary = json.loads((out / f"{name}.summary.json").read_text())
        assert summary["frames"] == 275
        nodes.add(summary["node"]["id"])
        rows = (out / f"{name}.tracks.txt").read_text().splitlines()
        assert rows and all(len(r.split(",")) >= 10 for r in rows)  # MOTChallenge rows + identity
    assert len(nodes) >= 2, "every video ran on one node"

    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "4 video(s): 0 done, 4 already done, 0 failed" in again.stderr


def test_a_broken_video_is_reported_with_its_reason_and_the_rest_are_done(ray_cluster, cli, engines_dir, tmp_path):
    cluster, _ = ray_cluster
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(media_path("short_hamilton_clip.mp4"), videos / "good.mp4")
    (videos / "broken.mp4").write_bytes(b"\x00" * 4096)
    out = tmp_path / "out"
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    proc = subprocess.run([sys.executable, "-m", "stream", "site", "batch", "--address", cluster.address,
                           str(videos), "--out", str(out), "--no-progress"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "2 video(s): 1 done, 0 already done, 1 failed" in proc.stderr
    assert "facestream batch: broken:" in proc.stderr and "Traceback" not in proc.stderr
    failed = _read(out / "failed.jsonl")
    assert [f["name"] for f in failed] == ["broken"] and failed[0]["reason"]
    assert (out / "good.summary.json").exists() and not (out / "broken.summary.json").exists()


def test_without_ray_the_command_says_what_to_install(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"")
    code = ("import sys; sys.modules['ray'] = None; from stream.cli import main; "
            f"sys.exit(main(['site', 'batch', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("facestream: facestream site run/batch needs Ray: "
                                   "pip install 'facestream[site]'")
