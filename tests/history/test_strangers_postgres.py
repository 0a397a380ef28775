"""Strangers remembered on a real PostgreSQL server started on 127.0.0.1 (skipped where there is none): two
runs writing one database at the same time see each other's strangers, and naming one names both runs'
tracks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.events.schema import Event
from stream.history.config import HistoryConfig
from stream.history.recorder import HistoryRecorder, OpenTrack, TrackModel
from stream.history.store import HistoryStore
from tests.history.test_strangers import DIM, TH, near, person
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # starts a server


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


def _wait(check, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _see(rec: HistoryRecorder, n: int, mean: np.ndarray, ts: float) -> None:
    """One unknown track of 6 embeddings ends, and is committed."""
    before = rec.stats().delivered
    track = rec.open.setdefault(("cam1", n), OpenTrack())
    for f in range(6):
        track.add(f, f / 10, ts + f, mean, np.zeros((8, 8, 3), np.uint8), 1.0, 0.9, 2)
    rec.write(Event(type="track_ended", source="cam1", track_id=n, frame=6, pts=0.6, ts=ts + 6))
    _wait(lambda: rec.stats().delivered == before + 1)


def _stranger(url: str, run: str, n: int) -> str | None:
    with HistoryStore.open(url) as store:
        (row,) = store.tracks(run_id=run, source="cam1")[n - 1:n]
        return row.stranger_id


def test_two_runs_writing_at_once_share_their_strangers_and_one_name(pg) -> None:
    space = "pg-two-runs"
    config = HistoryConfig(url=pg.url, commit_every_s=0.1, strangers_threshold=TH)
    a, b = person(1), person(2)
    one = HistoryRecorder(pg.url, config, TrackModel("m", space, DIM), "run-a")
    two = HistoryRecorder(pg.url, config, TrackModel("m", space, DIM), "run-b")
    try:
        _see(one, 1, near(a, 0.05, 1), 1000.0)
        _see(two, 1, near(a, 0.08, 2), 2000.0)  # two's memory loads one's stranger
        _see(two, 2, near(b, 0.05, 3), 3000.0)
        _see(one, 2, near(b, 0.08, 4), 4000.0)  # one's memory, loaded at its first track, reads two's new one
    finally:
        one.close()
        two.close()
    sa, sb = _stranger(pg.url, "run-a", 1), _stranger(pg.url, "run-b", 2)
    assert sa and sb and sa != sb
    assert _stranger(pg.url, "run-b", 1) == sa and _stranger(pg.url, "run-a", 2) == sb
    assert one.new_strangers + two.new_strangers == 2
    with HistoryStore.open(pg.url) as store:
        assert store.name_stranger(sa, "Alice Doe") == 2
        assert {(r.run_id, r.track_id) for r in store.tracks(identity="Alice Doe")} == {("run-a", 1), ("run-b", 1)}
        summary = {s.stranger_id: s for s in store.strangers()}
        assert (summary[sa].name, summary[sa].tracks, summary[sa].first_seen) == ("Alice Doe", 2, 1000.0)
        assert summary[sb].name is None and summary[sb].tracks == 2
        assert [s.stranger_id for s in store.strangers(since=3500)] == [sb]  # seen since: b's track of 4000
        assert [s.stranger_id for s in store.strangers(named=True)] == [sa]
        with pytest.raises(FacestreamError, match="no such stranger"):
            store.name_stranger("stranger-999999", "Bob")
