"""A subscriber that stops reading during a real run: the run's dropped count is what it never got."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time

import pytest
import zmq

from stream.events.schema import Event
from tests.conftest import REPO
from tests.support.scenes import write_looped_clip

pytestmark = pytest.mark.slow

STALL_EVENTS = 400  # far more than the queues and socket buffers between the run and this test hold


def test_a_subscriber_that_stops_reading_loses_exactly_what_the_run_counts_as_dropped(
        engines_dir, default_model, tmp_path):
    clip = tmp_path / "looped.mp4"
    write_looped_clip(clip, 4)
    # An ipc socket (small kernel buffers), a tiny high-water mark and a heartbeat with every frame:
    # a stalled subscriber overflows within seconds. A long linger: what is still queued for this
    # subscriber when the run closes its socket reaches it however slowly this test process reads.
    endpoint = f"ipc://{tmp_path / 'events.sock'}"
    config = tmp_path / "drops.yaml"
    config.write_text("output:\n  sndhwm: 5\n  heartbeat_s: 0.001\n  linger_s: 30\n")
    summary_path = tmp_path / "s.json"
    events_log = tmp_path / "events.jsonl"  # every event the run makes, whoever gets it
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "run", "--source", str(clip), "--config", str(config),
         "--publish", endpoint, "--summary-json", str(summary_path), "--events-out", str(events_log),
         "--no-progress"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 5)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    seqs: list[int] = []
    try:
        assert sub.poll(90_000), "no event within 90 s"
        seqs.append(Event.from_json(sub.recv_multipart()[1]).seq)
        # Stops reading while the run makes STALL_EVENTS more events (however slow this machine is).
        deadline = time.monotonic() + 120
        while _lines(events_log) < seqs[0] + STALL_EVENTS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before the subscriber caught up: make the clip longer"
        while proc.poll() is None or sub.poll(1000):  # catches up, and reads to the end of the run
            if sub.poll(200):
                seqs.append(Event.from_json(sub.recv_multipart()[1]).seq)
        _, err = proc.communicate(timeout=60)
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(summary_path.read_text())
    dropped, delivered, unheard = summary["publish_dropped"], summary["published"], summary["publish_unheard"]
    assert dropped > 0, f"the stall did not overflow the queues: {summary}"
    assert all(a < b for a, b in itertools.pairwise(seqs)), "seq strictly increases"
    # Sent while it was subscribed (from its first event to the run's last, which may itself have been
    # refused: the publisher learns that a queue has room again only when the subscriber says so) minus
    # what it got:
    last = summary["events"]
    assert seqs[-1] <= last
    attempted = last - seqs[0] + 1
    assert attempted - len(seqs) == dropped, (attempted, len(seqs), dropped, unheard)
    assert delivered + dropped + unheard == last, "every event is counted once: delivered, dropped or unheard"


def _lines(path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0
