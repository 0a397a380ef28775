"""Workers SIGKILLed at random moments during a file run: what the run reports must stay true.

Real processes, real video decode, MediaPipe and ONNX Runtime; the kills are real SIGKILLs.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from stream.events.mot import read_mot
from tests.conftest import REPO
from tests.support.procs import processes_with
from tests.support.scenes import write_looped_clip

pytestmark = pytest.mark.slow

LOOPS = 4  # the 275-frame clip four times: long enough for a dozen kills and their restarts
KINDS = ("fs-reader", "fs-detect", "fs-embed", "fs-publish")
KILLS_PER_KIND = 3


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("chaos") / "looped.mp4"
    return path, write_looped_clip(path, LOOPS)


def _children(marker: str) -> dict[str, list[int]]:
    """pids of the run's processes by name."""
    out: dict[str, list[int]] = {}
    for pid, name in processes_with(marker).items():
        out.setdefault(name, []).append(pid)
    return out


def _kill_schedule(seed: int) -> list[str]:
    kinds = [kind for kind in KINDS for _ in range(KILLS_PER_KIND)]
    random.Random(seed).shuffle(kinds)
    return kinds


def test_random_kills_of_every_worker_kind_leave_the_events_and_counts_consistent(
        engines_dir, default_model, long_clip, tmp_path):
    clip, total = long_clip
    config = tmp_path / "chaos.yaml"
    # Room for every kill within the restart window; a short stall timeout is not needed (kills).
    config.write_text("pipeline:\n  max_restarts: 10\n  restart_window_s: 600\n"
                      "sources:\n  realtime: true\n")
    marker = f"FACESTREAM_TEST_MARK={uuid.uuid4().hex}"
    key, value = marker.split("=")
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), key: value}
    events_path, tracks_path, summary_path = tmp_path / "events.jsonl", tmp_path / "tracks.txt", tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "run", "--source", f"chaos={clip}", "--config", str(config),
         "--events-out", str(events_path), "--tracks-out", str(tracks_path), "--summary-json", str(summary_path),
         "--no-progress"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seed = int(os.environ.get("FACESTREAM_CHAOS_SEED", "0")) or random.randrange(1 << 30)
    rng = random.Random(seed)
    killed: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + 60
        while set(KINDS) - set(_children(marker)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"not every worker started: {_children(marker)}"
            time.sleep(0.2)
        time.sleep(1.0)  # frames are flowing
        for kind in _kill_schedule(seed):
            time.sleep(rng.uniform(0.5, 2.5))
            pids = _children(marker).get(kind)
            if not pids or proc.poll() is not None:
                continue  # between its death and its restart, or the run is over
            os.kill(pids[0], signal.SIGKILL)
            killed[kind] += 1
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    context = f"seed {seed} (FACESTREAM_CHAOS_SEED), kills {dict(killed)}\n{err[-3000:]}"
    assert proc.returncode == 0, context
    assert "restarts: " in err and "lost)" in err, "the summary line names the restarts"
    assert sum(killed.values()) >= len(KINDS) * (KILLS_PER_KIND - 1), context
    summary = json.loads(summary_path.read_text())

    # Every restart is counted, by worker.
    worker = {"fs-reader": "reader-chaos", "fs-detect": "detect-0", "fs-embed": "embed", "fs-publish": "publish"}
    assert summary["restarts"] == {worker[kind]: n for kind, n in killed.items()}, context
    # Every frame of the file is accounted for: published, or lost with a killed worker.
    source = summary["per_source"]["chaos"]
    assert source["read"] == total, context
    assert source["frames"] + source["lost"] == total, (source, context)
    assert sum(b - a + 1 for a, b in source["lost_frames"]) == source["lost"], source
    assert source["lost"] <= 4 * sum(killed.values()), (source, context)  # a kill loses the frames it held

    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    seqs = [e["seq"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs)), "seq went back or repeated"
    started = Counter(e["track_id"] for e in events if e["type"] == "track_started")
    ended = Counter(e["track_id"] for e in events if e["type"] == "track_ended")
    assert max(started.values()) == 1, "a track id was started twice"
    assert started == ended, f"unbalanced: {set(started) ^ set(ended)}"
    # Frames never go back: the frames of what is published per frame, and the per-frame track rows.
    live = [(e["frame"], e["pts"]) for e in events if e["type"] in ("track_started", "identity")]
    assert all(a <= b for a, b in itertools.pairwise(f for f, _ in live)), "an event went back in frames"
    assert all(a <= b for a, b in itertools.pairwise(p for _, p in live)), "an event went back in pts"
    rows = [r[0] for r in read_mot(tracks_path)]
    assert all(a <= b for a, b in itertools.pairwise(rows)), "tracks-out went back in frames"
    first_seen: dict[int, int] = {}
    for e in events:
        if e["type"] == "track_started":
            first_seen[e["track_id"]] = e["frame"]
        elif e["type"] == "track_ended":
            assert e["frame"] >= first_seen[e["track_id"]]
    assert summary["frames"] == source["frames"]
    # Heartbeats report the restarts as they happen.
    beats = [e["stats"]["worker_restarted"] for e in events if e["type"] == "heartbeat"]
    assert beats and all(set(b) == set(worker.values()) for b in beats)
    assert all(b[w] <= summary["restarts"].get(w, 0) for b in beats for w in b)
