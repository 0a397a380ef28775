"""Strangers remembered across real runs: the Hamilton clip run twice into one history store with a gallery
that holds Lin-Manuel Miranda only, so Alex Lacamoire and the three people at the end are unknowns in both
runs. Each of them keeps one stranger id across the runs, different people get different ids, and
`facestream history name` names both runs' tracks (and, with --enroll, adds them to a gallery)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES
from stream.history.store import HistoryStore, TrackRow
from tests.conftest import assert_one_line_error, media_path
from tests.history.search_set import LABELS, first_boxes, label_of

pytestmark = pytest.mark.slow  # two runs of the clip

LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"


@pytest.fixture(scope="module")
def two_runs(cli, tmp_path_factory) -> tuple[Path, Path, dict[tuple[str, int], str | None]]:
    """(store, gallery, (run id, track id) -> label of the track from search_labels.json)."""
    root = tmp_path_factory.mktemp("strangers")
    gallery, db = root / "lin.npz", root / "h.db"
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path("lin-manuel-miranda.png"), check=True)
    boxes = []
    for n in (1, 2):
        events = root / f"events{n}.jsonl"
        cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--gallery", gallery, "--history", db,
            "--events-out", events, "--no-progress", check=True)
        boxes.append(first_boxes(events))
    labels = json.loads(LABELS.read_text())
    with HistoryStore.open(db, create=False) as store:
        runs = [r.id for r in store.runs()]
        assert len(runs) == 2
        rows = store.tracks()
    by_run = {run: n for n, run in enumerate(runs)}
    return db, gallery, {(r.run_id, r.track_id): label_of(r.first_frame, r.last_frame,
                                                          boxes[by_run[r.run_id]].get(r.track_id), labels)
                         for r in rows}


def _rows(db: Path) -> list[TrackRow]:
    with HistoryStore.open(db, create=False) as store:
        return store.tracks()


def test_each_unknown_keeps_one_stranger_id_across_the_two_runs(two_runs) -> None:
    db, _, labels = two_runs
    rows = _rows(db)
    run1, run2 = sorted({r.run_id for r in rows}, key=lambda run: min(r.id for r in rows if r.run_id == run))
    solid = [r for r in rows if r.identity is None and r.faces >= MIN_FACES and r.detector_score >= MIN_DETECTOR_SCORE]
    assert all(r.stranger_id for r in solid) and solid
    assert all(r.stranger_id is None for r in rows if r not in solid)  # named or too weak to remember
    assert {r.identity for r in rows} - {None} == {LIN}  # Alex is not in this gallery
    ids1 = {r.stranger_id for r in solid if r.run_id == run1}
    ids2 = {r.stranger_id for r in solid if r.run_id == run2}
    assert ids2 == ids1  # the second run met nobody new: everyone it saw was remembered from the first
    alex = {r.stranger_id for r in solid if labels[(r.run_id, r.track_id)] == "alex-lacamoire"}
    others = [r for r in solid if labels[(r.run_id, r.track_id)] == "other"]
    assert alex and len(others) >= 4
    assert not alex & {r.stranger_id for r in others}  # different people, different ids
    for run in (run1, run2):  # the people at the end are on screen together: three people, three ids
        at_end = [r.stranger_id for r in others if r.run_id == run]
        assert len(set(at_end)) == len(at_end)
    for sid in alex:  # each of Alex's strangers was seen in both runs
        assert {r.run_id for r in solid if r.stranger_id == sid} == {run1, run2}


def test_history_strangers_lists_times_seen_and_cameras(cli, two_runs) -> None:
    db, _, _ = two_runs
    rows = [r for r in _rows(db) if r.stranger_id]
    listed = [json.loads(line) for line in cli("history", "strangers", "--history", db, "--json", check=True)
              .stdout.splitlines()]
    assert {s["stranger_id"] for s in listed} == {r.stranger_id for r in rows}
    for s in listed:
        mine = [r for r in rows if r.stranger_id == s["stranger_id"]]
        assert s["tracks"] == len(mine) >= 2 and s["sources"] == ["short_hamilton_clip"] and s["name"] is None
        assert s["first_seen"] == min(r.started_at for r in mine) and s["last_seen"] == max(r.ended_at for r in mine)
        assert s["best_track_id"] in {r.id for r in mine}
    table = cli("history", "strangers", "--history", db, check=True).stdout.splitlines()
    assert table[0].split() == ["stranger", "seen", "first", "seen", "last", "seen", "cameras", "name"]
    assert len(table) == 1 + len(listed)
    people = cli("history", "--history", db, check=True).stdout
    assert all(s["stranger_id"] in people for s in listed)  # the people table names strangers by their id


def test_naming_a_stranger_names_both_runs_tracks_and_enrolls_them(cli, two_runs, tmp_path) -> None:
    from stream.recognize.gallery import Gallery

    db, gallery, labels = two_runs
    rows = _rows(db)
    alex = [r for r in rows if r.stranger_id and labels[(r.run_id, r.track_id)] == "alex-lacamoire"]
    sid = max({r.stranger_id for r in alex}, key=lambda s: sum(r.faces for r in alex if r.stranger_id == s))
    theirs = {r.id for r in rows if r.stranger_id == sid}
    copy = tmp_path / "g.npz"
    copy.write_bytes(gallery.read_bytes())
    out = cli("history", "name", sid, ALEX, "--history", db, "--enroll", copy, check=True).stdout
    assert out.startswith(f"{sid}: named {ALEX}: {len(theirs)} track(s); enrolled ")
    after = _rows(db)
    assert {r.id for r in after if r.identity == ALEX} == theirs
    assert len({r.run_id for r in after if r.identity == ALEX}) == 2  # both runs' tracks
    assert {r.identity for r in after if r.id not in theirs} == {LIN, None}  # nobody else renamed
    who = [json.loads(line) for line in cli("history", "--history", db, "--who", ALEX, "--json", check=True)
           .stdout.splitlines()]
    assert {w["id"] for w in who} == theirs and all(w["stranger_id"] == sid for w in who)
    named = json.loads(cli("history", "strangers", "--history", db, "--named", "--json", check=True).stdout)
    assert named["stranger_id"] == sid and named["name"] == ALEX
    enrolled = Gallery.load(copy)
    assert enrolled.names.count(ALEX) >= 5 and enrolled.names.count(LIN) == 1


def test_naming_errors_are_one_line_and_change_nothing(cli, two_runs) -> None:
    db = two_runs[0]
    before = [(r.id, r.identity) for r in _rows(db)]
    assert_one_line_error(cli("history", "name", "stranger-999999", "Bob", "--history", db),
                          "stranger-999999", "no such stranger")
    assert_one_line_error(cli("history", "name", "bob", "Bob", "--history", db), "bob", "not a stranger id")
    sid = next(r.stranger_id for r in _rows(db) if r.stranger_id)
    assert_one_line_error(cli("history", "name", sid, "../x", "--history", db), "not a usable name")
    assert_one_line_error(cli("history", "strangers", "--history", db, "--since", "yesterday"), "not a time")
    assert [(r.id, r.identity) for r in _rows(db)] == before
