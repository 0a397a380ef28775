"""The history store on a real PostgreSQL server started on 127.0.0.1 (skipped where there is none):
the same schema and queries as SQLite, and a recorder that rides out the server going away."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from stream.events.schema import Event
from stream.history.config import HistoryConfig
from stream.history.recorder import HistoryRecorder, TrackModel
from stream.history.store import HistoryStore
from tests.history.test_store import track
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # starts a server


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


def test_the_store_works_the_same_on_postgresql(pg) -> None:
    from stream.history import migrate

    with HistoryStore.open(pg.url) as store:
        assert store.dialect == "postgresql" and migrate.current(store.engine) == migrate.head()
        ids = store.write_tracks([track(1), track(2, identity=None, start=2000)])
        assert [r.track_id for r in store.tracks(unknown=True)] == [2]
        assert [r.id for r in store.get(ids[::-1])] == ids[::-1]
        assert store.thumbnail(ids[0]) == b"\xff\xd8jpeg"
        (block,) = store.iter_embeddings("space-a", kind="best")
        assert list(block[0]) == [ids[0]] * 3 + [ids[1]] * 3 and block[1].dtype == np.float32
    HistoryStore.open(pg.url).close()  # current: opens as it is


def test_rows_queued_while_postgresql_is_down_arrive_when_it_is_back(pg) -> None:
    config = HistoryConfig(url=pg.url, commit_every_s=0.1)
    rec = HistoryRecorder(pg.url, config, TrackModel("m", "space-a", 8), "run-pg")

    def decide(n: int) -> None:
        rec.write(Event(type="identity", source="cam1", track_id=n, identity="alice", ts=1000.0 + n))

    decide(1)
    _wait(lambda: rec.stats().delivered == 1)
    pg.stop()
    for n in range(2, 6):  # the pipeline goes on writing; nothing blocks
        started = time.monotonic()
        decide(n)
        assert time.monotonic() - started < 0.05
    time.sleep(1.0)
    assert rec.stats().delivered == 1 and rec.stats().queued == 4 and rec.stats().dropped == 0
    pg.start()
    _wait(lambda: rec.stats().delivered == 5, timeout=30)
    rec.close()
    with HistoryStore.open(pg.url) as store:
        assert all(store.decisions("run-pg", "cam1", n) for n in range(1, 6))


def _wait(check, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_run_rides_out_postgresql_stopping_and_starting(pg, cli, tmp_path) -> None:
    from tests.conftest import REPO, media_path

    gallery, events = tmp_path / "g.npz", tmp_path / "events.jsonl"
    cli("enroll", "--gallery", gallery, "--name", "Lin-Manuel Miranda", media_path("lin-manuel-miranda.png"),
        check=True)
    with HistoryStore.open(pg.url) as store:
        before, runs_before = store.count(), len(store.runs())
    # --realtime: the clip plays for ~11 s, long enough to take the server away and bring it back
    clip = str(media_path("short_hamilton_clip.mp4"))
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", clip,
                             "--gallery", str(gallery), "--history", pg.url, "--events-out", str(events),
                             "--realtime", "--no-progress"], cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _count(pg.url) > before, timeout=120)
        pg.stop()
        time.sleep(2.0)
        assert proc.poll() is None  # the run goes on without its store
        pg.start()
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    kinds = [json.loads(ln)["type"] for ln in events.read_text().splitlines()]
    ended, decided = kinds.count("track_ended"), kinds.count("identity")
    summary = re.search(r"history: (\d+) rows written, (\d+) dropped", stderr)
    assert summary, stderr
    written, dropped = map(int, summary.groups())
    assert written + dropped == ended + decided  # every row arrived or was counted
    assert dropped == 0  # the queue held the outage
    with HistoryStore.open(pg.url) as store:
        assert store.count() - before == ended
        (run,) = store.runs()[runs_before:]  # one run, whose end was recorded after the outage
        assert run.kind == "archive" and run.ended_at is not None


def _count(url: str) -> int:
    try:
        with HistoryStore.open(url) as store:
            return store.count()
    except Exception:  # not up yet
        return 0
