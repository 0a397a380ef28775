"""The run ledger and track journal: what a restarted worker reads back."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from stream.pipeline.ledger import RELEASED, RunLedger, SourceEnds, TrackJournal


def test_the_journal_gives_back_open_tracks_names_and_lost_frames_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "tracks.journal"
    journal = TrackJournal(path)
    for record in ({"type": "track_started", "source": "a", "track_id": 1, "frame": 3},
                   {"type": "identity", "source": "a", "track_id": 1, "identity": "ann", "frame": 5},
                   {"type": "track_started", "source": "a", "track_id": 2, "frame": 6},
                   {"type": "track_ended", "source": "a", "track_id": 2, "frame": 9},
                   {"lost": [10, 11], "source": "a"}):
        journal.append(record)
    journal.close()
    with open(path, "a") as f:
        f.write('{"type": "track_sta')  # a publisher killed mid-line
    state = TrackJournal.replay(path)
    assert list(state.open_tracks) == [("a", 1)] and state.open_tracks[("a", 1)]["identity"] == "ann"
    assert state.named == {("a", 1): ["ann"]}
    assert state.lost == {"a": [[10, 11]]}


@pytest.mark.slow
def test_counters_and_slot_holders_are_shared_with_a_spawned_process(tmp_path):
    ctx = mp.get_context("spawn")
    ledger = RunLedger.create(ctx, {"cam": 3}, ["reader-cam"], tmp_path / "j")
    assert list(ledger.sources["cam"].holders) == [RELEASED] * 3 and ledger.sources["cam"]["last_frame"] == -1
    proc = ctx.Process(target=_write_from_a_child, args=(ledger,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert ledger.run["seq"] == 41 and ledger.sources["cam"]["read_next"] == 17
    assert ledger.sources["cam"].holders[1] == 16


def _write_from_a_child(ledger: RunLedger) -> None:
    ledger.run.add("seq", 41)
    ledger.sources["cam"]["read_next"] = 17
    ledger.sources["cam"].holders[1] = 16
    os._exit(0)


def test_an_end_swallowed_by_a_killed_worker_is_made_again_only_when_the_inbox_is_empty(tmp_path):
    ledger = RunLedger.create(mp.get_context("spawn"), {"a": 2, "b": 2}, [], tmp_path / "j")
    ends = SourceEnds(ledger, "detect", ["a", "b"])
    assert ends.swallowed(lambda: True) == []  # no reader has ended
    ledger.sources["a"].mark_ended("reader")
    ledger.sources["a"]["read_next"] = 99
    assert ends.swallowed(lambda: False) == []  # the end may still be in the inbox
    (end,) = ends.swallowed(lambda: True)
    assert end.source == "a" and end.frames == 99
    ends.passed("a")
    assert ends.open == {"b"} and ledger.sources["a"]["end_detect"] == 1
    assert SourceEnds(ledger, "detect", ["a", "b"]).open == {"b"}  # a restarted worker knows it too
