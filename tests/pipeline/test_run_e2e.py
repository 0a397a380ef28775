"""`facestream run` end to end: real processes, shared memory, MediaPipe, ONNX Runtime, real video."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import pytest

from stream.events.mot import read_mot
from tests.conftest import REPO, media_path
from tests.support.http_files import serve_files
from tests.support.procs import processes_with

pytestmark = pytest.mark.slow

IN_CLIP = {"lin-manuel-miranda", "alex-lacamoire", "barack-obama"}


@pytest.fixture(scope="module")
def clip_run(cli, gallery, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--gallery", gallery,
               "--events-out", out / "events.jsonl", "--summary-json", out / "summary.json",
               "--annotate", out / "annotated.mp4", "--tracks-out", out / "tracks.txt", "--no-progress", check=True)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return proc, events, json.loads((out / "summary.json").read_text()), out


def test_every_frame_processed_and_summary_printed(clip_run):
    proc, _, summary, _ = clip_run
    assert summary["frames"] == 275
    assert summary["per_source"]["short_hamilton_clip"]["dropped"] == 0
    assert "facestream: 275 frames" in proc.stderr and "Traceback" not in proc.stderr
    assert summary["engine"]["backend"] == "onnxruntime"


def test_lin_manuel_miranda_is_named_while_he_sings(clip_run):
    _, events, _, _ = clip_run
    named = [e for e in events if e["type"] == "identity" and e["identity"] == "lin-manuel-miranda"]
    assert named, "Lin-Manuel Miranda was never named"
    # He is also named far away on stage in the first shot (frames 0-19); the singing is ~85-205.
    singing = [e for e in named if 82 <= e["frame"] < 150]
    assert singing, "not named early in his frontal singing"
    track = singing[0]["track_id"]
    ended = next(e for e in events if e["type"] == "track_ended" and e["track_id"] == track)
    assert ended["frame"] > 180 and ended["identity"] == "lin-manuel-miranda"


def test_nobody_is_named_who_is_not_in_the_clip_and_no_track_flips(clip_run):
    _, events, summary, _ = clip_run
    names = {e["identity"] for e in events if e["type"] == "identity" and e["identity"]}
    assert names <= IN_CLIP, names
    for track, history in summary["named_tracks"].items():
        assert len(history) == 1, f"{track} changed names: {history}"


def test_alex_lacamoire_is_named_and_the_audience_is_not_named_wrongly(clip_run):
    _, events, _, _ = clip_run
    named = {(e["identity"], e["frame"]) for e in events if e["type"] == "identity" and e["identity"]}
    assert any(name == "alex-lacamoire" for name, _ in named), named
    # From the cut to the audience (frame 211) on, only Barack Obama may be named.
    late = {name for name, frame in named if frame >= 211}
    assert late <= {"barack-obama"}, late


CUTS = (20, 82, 211)  # the clip's shot changes (tests/track/test_scene.py)


def test_no_track_spans_a_cut(clip_run):
    *_, out = clip_run
    frames: dict[int, list[int]] = {}
    for row in read_mot(out / "tracks.txt"):
        frames.setdefault(row[1], []).append(row[0] - 1)
    assert len(frames) > 5
    for track, seen in frames.items():
        shots = {sum(f >= c for c in CUTS) for f in seen}
        assert len(shots) == 1, f"track {track} spans a cut: frames {min(seen)}-{max(seen)}"


def test_tracks_out_rows_agree_with_the_events(clip_run):
    _, events, summary, out = clip_run
    rows = read_mot(out / "tracks.txt")
    assert len(rows) == summary["faces"]
    started = {e["track_id"]: e["frame"] for e in events if e["type"] == "track_started"}
    ended = {e["track_id"]: e for e in events if e["type"] == "track_ended"}
    assert set(started) == set(ended) == {r[1] for r in rows}
    for frame, track, _x, _y, w, h, conf, _identity in rows:
        assert started[track] <= frame - 1 <= ended[track]["frame"], (frame, track)
        assert w > 0 and h > 0 and 0 < conf <= 1
    # The identity column is the track's decided name from its identity event on.
    for e in events:
        if e["type"] == "identity":
            later = [r[7] for r in rows if r[1] == e["track_id"] and r[0] - 1 >= e["frame"]]
            assert later and later[0] == (e["identity"] or ""), e
    last_rows = {}
    for r in rows:
        last_rows[r[1]] = r
    for track, e in ended.items():
        assert last_rows[track][7] == (e["identity"] or ""), track


def test_event_stream_is_well_formed(clip_run):
    _, events, _, _ = clip_run
    per_track: dict[int, list[str]] = {}
    for e in events:
        assert e["schema"] == 1 and e["source"] == "short_hamilton_clip"
        if e["type"] != "heartbeat":
            per_track.setdefault(e["track_id"], []).append(e["type"])
    for track, kinds in per_track.items():
        assert kinds[0] == "track_started" and kinds[-1] == "track_ended" and kinds.count("track_ended") == 1, track


def test_annotated_video_has_every_frame(clip_run):
    *_, out = clip_run
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 275


def start_realtime_run(engines_dir: Path, gallery: Path, summary: Path) -> tuple[str, subprocess.Popen]:
    """`facestream run --realtime` on the clip, its processes tagged by an environment marker."""
    marker = f"FACESTREAM_TEST_MARK={uuid.uuid4().hex}"
    key, value = marker.split("=")
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), key: value}
    clip = str(media_path("short_hamilton_clip.mp4"))
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", clip, "--gallery", str(gallery),
                             "--realtime", "--no-progress", "--summary-json", str(summary)],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    return marker, proc


def _processes_with(marker: str) -> list[int]:
    return list(processes_with(marker))


def _sigint_to_the_supervisor(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)


def _sigterm_to_the_group_twice(proc: subprocess.Popen) -> None:
    """As timeout(1) does: the command, then its whole process group (workers included)."""
    proc.send_signal(signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGTERM)


@pytest.mark.parametrize("stop", [_sigint_to_the_supervisor, _sigterm_to_the_group_twice])
def test_a_stop_signal_drains_and_leaves_no_processes_or_shared_memory(engines_dir, default_model, gallery, tmp_path,
                                                                       stop):
    shm_before = set(os.listdir("/dev/shm"))
    marker, proc = start_realtime_run(engines_dir, gallery, tmp_path / "s.json")
    try:
        time.sleep(7)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert len(_processes_with(marker)) >= 5, "supervisor + reader, detect, embed, publish"
        stop(proc)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["interrupted"] and 0 < summary["frames"] < 275
    time.sleep(0.5)
    assert _processes_with(marker) == [], "orphan processes"
    leaked = {n for n in set(os.listdir("/dev/shm")) - shm_before if n.startswith("fs")}
    assert not leaked, leaked


def _pid_named(marker: str, name: str) -> int | None:
    for pid in _processes_with(marker):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                return pid
        except OSError:
            continue
    return None


def test_a_killed_worker_is_restarted_and_the_run_completes(engines_dir, default_model, gallery, tmp_path):
    marker, proc = start_realtime_run(engines_dir, gallery, tmp_path / "s.json")
    try:
        deadline = time.monotonic() + 30
        while (pid := _pid_named(marker, "fs-detect")) is None or time.monotonic() < deadline - 25:
            assert time.monotonic() < deadline, "no fs-detect process"
            time.sleep(0.2)
        time.sleep(2)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "detect-0 exited with code -9; restarting" in err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["restarts"] == {"detect-0": 1} and summary["frames"] > 150


def test_workers_die_with_a_killed_supervisor(engines_dir, default_model, gallery, tmp_path):
    marker, proc = start_realtime_run(engines_dir, gallery, tmp_path / "s.json")
    try:
        deadline = time.monotonic() + 30
        while len(_processes_with(marker)) < 5:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        time.sleep(1)  # the realtime clip has ~8 s to go: left alone, its reader would outlive this test
        proc.kill()  # SIGKILL: no handler, no drain, no atexit
        proc.wait(timeout=10)  # not communicate(): orphans would hold its stderr open
        deadline = time.monotonic() + 3
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_with(marker) == [], "orphan workers"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_a_video_served_over_http_is_processed_like_a_file(cli, gallery, tmp_path):
    clip = media_path("short_hamilton_clip.mp4")
    with serve_files({clip.name: clip.read_bytes()}) as server:
        proc = cli("run", "--source", server.url(clip.name), "--gallery", gallery, "--no-progress",
                   "--summary-json", tmp_path / "s.json", check=True)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 275 and summary["per_source"]["short_hamilton_clip"]["dropped"] == 0, proc.stderr
    named = {n for names in summary["named_tracks"].values() for n in names}
    assert "lin-manuel-miranda" in named and named <= IN_CLIP


def test_live_camera_to_a_zeromq_subscriber(engines_dir, default_model, gallery, tmp_path):
    """The product end to end: a live MJPEG camera -> the pipeline -> ZeroMQ -> `facestream subscribe`."""
    from tests.support.mjpeg_server import MjpegServer
    from tests.support.net import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    got = tmp_path / "identity.jsonl"
    camera = MjpegServer(media_path("short_hamilton_clip.mp4")).start()
    subscriber = subprocess.Popen([sys.executable, "-m", "stream", "subscribe", "--connect", endpoint,
                                   "--topic", "identity.door", "--out", str(got)],
                                  cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    run = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", f"door={camera.url}",
                            "--gallery", str(gallery), "--publish", endpoint, "--no-progress",
                            "--summary-json", str(tmp_path / "s.json")],
                           cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        named: list[dict] = []
        while not named:
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            assert time.monotonic() < deadline, "no identity event for Lin-Manuel Miranda within 60 s"
            time.sleep(0.5)
            events = [json.loads(line) for line in got.read_text().splitlines()] if got.exists() else []
            named = [e for e in events if e["identity"] == "lin-manuel-miranda"]
        run.send_signal(signal.SIGINT)
        _, run_err = run.communicate(timeout=30)
        subscriber.send_signal(signal.SIGTERM)
        _, sub_err = subscriber.communicate(timeout=10)
    finally:
        for proc in (run, subscriber):
            if proc.poll() is None:
                proc.kill()
        camera.stop()
    assert run.returncode == 0 and "Traceback" not in run_err, run_err
    assert subscriber.returncode == 0 and "Traceback" not in sub_err, sub_err
    event = named[0]
    assert (event["type"], event["source"], event["schema"]) == ("identity", "door", 1)
    assert {e["type"] for e in events} == {"identity"}, "the subscriber's topic filter"
    assert all(e["identity"] in IN_CLIP | {None} for e in events)
    summary = json.loads((tmp_path / "s.json").read_text())
    # Lin-Manuel Miranda is named far on stage within the first frames now: a short run is right.
    assert summary["interrupted"] and summary["frames"] >= 3


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_two_people_crossing_keep_their_own_names(cli, gallery, tmp_path):
    """Two real faces walk past each other (Obama in front, Lin-Manuel Miranda hidden for a while),
    then a hard cut swaps their sides: every named row of --tracks-out is on the right person."""
    from tests.support.scenes import write_crossing_video

    truth = write_crossing_video(tmp_path / "crossing.mp4")
    cut = truth["cut_frame"]
    cli("run", "--source", tmp_path / "crossing.mp4", "--gallery", gallery, "--events-out", tmp_path / "ev.jsonl",
        "--tracks-out", tmp_path / "tracks.txt", "--no-progress", check=True)
    person = {"lin-manuel-miranda": "lin-manuel-miranda", "obama": "barack-obama"}
    named_at: dict[str, list[int]] = {"lin-manuel-miranda": [], "barack-obama": []}
    track_frames: dict[int, list[int]] = {}
    for frame, track, x, y, w, h, _conf, name in read_mot(tmp_path / "tracks.txt"):
        index = frame - 1
        track_frames.setdefault(track, []).append(index)
        overlaps = [(_iou([x, y, x + w, y + h], box), who) for who, box in truth["boxes"][index].items() if box]
        best, who = max(overlaps, default=(0.0, None))
        if name:
            assert best > 0.3 and person[who] == name, f"frame {index}: track {track} named {name} on {who}"
            named_at[name].append(index)
    for name, frames in named_at.items():
        assert any(f < 30 for f in frames), f"{name} not named before the crossing"
        assert any(60 <= f < cut for f in frames), f"{name} not named after the crossing"
        assert any(f >= cut + 10 for f in frames), f"{name} not named after the cut"
    for track, frames in track_frames.items():
        assert max(frames) < cut or min(frames) >= cut, f"track {track} spans the cut"
