"""The History page's read-only queries (stream/history/queries.py) on a real SQLite store of hand-made
tracks: who was seen (people, remembered strangers, other unknowns), tracks by who, a day's timeline,
days in a time zone. The same queries on PostgreSQL: tests/web/test_history_api.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from stream.errors import FacestreamError
from stream.history import queries
from stream.history.store import HistoryStore
from tests.history.test_store import track


@pytest.fixture
def store(tmp_path: Path):
    with HistoryStore.open(tmp_path / "h.db") as s:
        yield s


def test_people_groups_named_people_strangers_and_other_unknowns(store: HistoryStore) -> None:
    ids = store.write([
        track(1, identity="alice", source="door", start=1000),
        replace(track(2, identity="alice", source="hall", start=2000), faces=9),  # the solid one: her thumbnail
        track(3, identity=None, source="door", start=1500),
        replace(track(4, identity=None, source="hall", start=1600), stranger_id="stranger-000001"),
        replace(track(5, identity=None, source="door", start=3000), stranger_id="stranger-000001"),
        # a stranger named later: their tracks carry the name, and count as that person's
        replace(track(6, identity="bob", source="door", start=1200), stranger_id="stranger-000002"),
    ])
    found = {p.key: p for p in queries.people(store)}
    assert [p.kind for p in queries.people(store)] == ["person", "person", "stranger", "unknown"]
    alice = found["alice"]
    assert (alice.tracks, alice.cameras, alice.first_seen, alice.last_seen) == (2, ["door", "hall"], 1000, 2005)
    assert alice.best_track_id == ids[1]
    assert (found["stranger-000001"].tracks, found["stranger-000001"].cameras) == (2, ["door", "hall"])
    assert found["bob"].kind == "person" and "stranger-000002" not in found
    assert (found[""].kind, found[""].tracks, found[""].best_track_id) == ("unknown", 1, ids[2])
    # a window and a camera
    assert {p.key for p in queries.people(store, since=2100)} == {"stranger-000001"}
    assert {p.key for p in queries.people(store, source="hall")} == {"alice", "stranger-000001"}
    assert queries.cameras(store) == ["door", "hall"]


def test_tracks_by_a_name_or_a_stranger_id_newest_first(store: HistoryStore) -> None:
    store.write([track(1, start=1000), track(2, start=3000), track(3, identity=None, start=2000),
                 replace(track(4, identity=None, start=2500), stranger_id="stranger-000007")])
    assert [r.track_id for r in queries.tracks(store, who="alice")] == [2, 1]
    assert [r.track_id for r in queries.tracks(store, who="stranger-000007")] == [4]
    assert [r.track_id for r in queries.tracks(store, unknown=True, newest_first=False)] == [3, 4]
    assert [r.track_id for r in queries.tracks(store, limit=1)] == [2]


def test_timeline_clips_to_the_window_and_keeps_the_longest_when_too_many(store: HistoryStore) -> None:
    store.write([track(1, start=995), track(2, source="hall", start=1002),
                 replace(track(3, start=1100), ended_at=1400)])
    lanes, truncated = queries.timeline(store, 1000, 1200)
    assert not truncated and sorted(lanes) == ["cam1", "hall"]
    assert [(s["start"], s["end"]) for s in lanes["cam1"]] == [(1000, 1000), (1100, 1200)]
    lanes, truncated = queries.timeline(store, 1000, 1200, max_intervals=1)
    assert truncated and [s["start"] for s in lanes["cam1"]] == [1100]  # the longest track
    # these times are below 1e8: the pts of files with no known start, which the page draws on their pts
    assert queries.latest(store) == 1400 and queries.pts_span(store) == 1400


def test_days_in_a_time_zone() -> None:
    start, end = queries.day_window("2026-03-29", "Europe/Paris")  # the clocks go forward: 23 hours
    assert end - start == 23 * 3600 and queries.day_of(start, "Europe/Paris") == "2026-03-29"
    assert queries.day_window("2026-05-01", None) == (1777593600.0, 1777680000.0)
    with pytest.raises(FacestreamError, match="day=May 1: not a date"):
        queries.day_window("May 1", "UTC")
    with pytest.raises(FacestreamError, match="tz=Mars/Base: not a time zone"):
        queries.zone_info("Mars/Base")
