"""Strangers remembered: the matching rule on arrays, the in-memory memory of recent unknown tracks on a
real SQLite store (two writers included), the store's ``strangers`` / ``name_stranger``, and the recorder
tagging the unknown tracks of two runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.history.config import HistoryConfig
from stream.history.recorder import HistoryRecorder, OpenTrack, TrackModel
from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES, unit_rows
from stream.history.store import HistoryStore, NewTrack
from stream.history.strangers import (
    DAY_S,
    TRACK_TO_TRACK_THRESHOLDS,
    StrangerMemory,
    eligible,
    nearest_within,
    stranger_id,
    stranger_number,
    track_to_track_threshold,
)

DIM = 16
SPACE = "space-a"
TH = 0.30


def person(seed: int) -> np.ndarray:
    """A unit 'person' direction; different seeds lie ~1.4 apart (16-d random)."""
    return unit_rows(np.random.default_rng(seed).normal(size=DIM))


def near(p: np.ndarray, distance: float, seed: int) -> np.ndarray:
    """A mean at exactly ``distance`` (unit sphere) from ``p``, on the model's own scale (norm 1.4)."""
    rng = np.random.default_rng(1000 + seed)
    r = rng.normal(size=DIM)
    r -= r.dot(p) * p
    r = unit_rows(r)
    angle = 2 * np.arcsin(distance / 2)
    return (1.4 * (np.cos(angle) * p + np.sin(angle) * r)).astype(np.float32)


def unknown(mean: np.ndarray, *, start: float = 1000.0, n: int = 1, identity: str | None = None,
            source: str = "cam1", faces: int = MIN_FACES, score: float = MIN_DETECTOR_SCORE, space: str = SPACE,
            run: str = "run-1") -> NewTrack:
    return NewTrack(run_id=run, origin=None, source=source, track_id=n, started_at=start, ended_at=start + 5,
                    start_pts=0.0, end_pts=5.0, first_frame=0, last_frame=150, video=None, identity=identity,
                    score=None, distance=None, detector_score=score, faces=faces, model="m", embedding_space=space,
                    dim=DIM, mean=np.asarray(mean, np.float32), best=np.asarray(mean, np.float32)[None],
                    thumbnail=None)


@pytest.fixture
def store(tmp_path: Path):
    with HistoryStore.open(tmp_path / "h.db") as s:
        yield s


def memory(**kw) -> StrangerMemory:
    return StrangerMemory(SPACE, kw.pop("threshold", TH), kw.pop("days", 30), kw.pop("capacity", 1000))


def tag_and_write(mem: StrangerMemory, store: HistoryStore, tracks: list[NewTrack]) -> list[str | None]:
    mem.tag(store, tracks, now=5000.0)
    mem.written(store.write_tracks(tracks), tracks)
    return [t.stranger_id for t in tracks]


# -- the rule, on arrays --------------------------------------------------------------------------------

def test_nearest_within_takes_the_nearest_row_under_the_threshold_and_mask() -> None:
    p = person(1)
    units = unit_rows(np.stack([near(p, 0.25, 1), near(p, 0.1, 2), near(p, 0.5, 3)]))
    assert nearest_within(p, units, TH)[0] == 1
    assert nearest_within(p, units, TH)[1] == pytest.approx(0.1, abs=1e-5)
    assert nearest_within(p, units, TH, np.array([True, False, True]))[0] == 0
    assert nearest_within(p, units, TH, np.array([False, False, True])) is None
    assert nearest_within(p, units, 0.05) is None
    assert nearest_within(p, np.zeros((0, DIM), np.float32), TH) is None


def test_stranger_ids_are_six_digits_and_parse_back() -> None:
    assert stranger_id(123) == "stranger-000123" and stranger_id(1234567) == "stranger-1234567"
    assert stranger_number("stranger-000123") == 123 and stranger_number(" stranger-7 ") == 7
    for bad in ("stranger-", "alice", "stranger-12a", "123"):
        with pytest.raises(FacestreamError, match="not a stranger id"):
            stranger_number(bad)


def test_the_threshold_is_measured_per_model_or_configured_or_none() -> None:
    assert track_to_track_threshold("dlib-resnet-v1") == TRACK_TO_TRACK_THRESHOLDS["dlib-resnet-v1"] == 0.30
    assert track_to_track_threshold("dlib-resnet-v1", 0.2) == 0.2
    assert track_to_track_threshold("unmeasured") is None  # no guess: strangers stay off for it
    assert track_to_track_threshold("unmeasured", 0.4) == 0.4


def test_only_solid_unknown_tracks_of_the_space_are_remembered() -> None:
    m = person(1)
    assert eligible(unknown(m), SPACE)
    assert not eligible(unknown(m, identity="alice"), SPACE)
    assert not eligible(unknown(m, faces=MIN_FACES - 1), SPACE)
    assert not eligible(unknown(m, score=MIN_DETECTOR_SCORE - 0.01), SPACE)
    assert not eligible(unknown(m, space="other"), SPACE)
    assert not eligible(unknown(np.full(DIM, np.nan)), SPACE)


# -- the memory, on a real store ------------------------------------------------------------------------

def test_near_tracks_share_an_id_far_ones_get_new_ones(store: HistoryStore) -> None:
    a, b = person(1), person(2)
    mem = memory()
    first = tag_and_write(mem, store, [unknown(near(a, 0.05, 1)), unknown(near(b, 0.05, 2), n=2)])
    assert first == ["stranger-000001", "stranger-000002"]
    later = tag_and_write(mem, store, [unknown(near(a, 0.1, 3), start=2000, n=3),
                                       unknown(near(b, 0.1, 4), start=2000, n=4, source="cam2"),
                                       unknown(person(3), start=2000, n=5)])
    assert later == ["stranger-000001", "stranger-000002", "stranger-000003"]


def test_a_track_just_past_the_threshold_is_a_new_stranger(store: HistoryStore) -> None:
    a = person(1)
    mem = memory()
    (one,) = tag_and_write(mem, store, [unknown(a * 1.4)])
    (inside,) = tag_and_write(mem, store, [unknown(near(a, TH - 0.01, 1), n=2, start=2000)])
    (outside,) = tag_and_write(mem, store, [unknown(near(a, TH + 0.01, 2), n=3, start=3000)])
    assert inside == one and outside != one


def test_tracks_of_one_batch_match_each_other(store: HistoryStore) -> None:
    a = person(1)
    ids = tag_and_write(memory(), store, [unknown(near(a, 0.05, 1), start=1000), unknown(near(a, 0.05, 2), start=1100),
                                          unknown(person(2), start=1200)])
    assert ids[0] == ids[1] != ids[2]


def test_two_faces_on_screen_together_are_two_strangers_however_near(store: HistoryStore) -> None:
    a = person(1)
    mem = memory()
    together = tag_and_write(mem, store, [unknown(near(a, 0.05, 1), start=1000), unknown(near(a, 0.05, 2), n=2,
                                                                                        start=1002)])
    assert together[0] != together[1]  # one run, one camera, overlapping times: two people
    (later,) = tag_and_write(mem, store, [unknown(near(a, 0.05, 3), n=3, start=1003)])  # overlaps both
    (apart,) = tag_and_write(mem, store, [unknown(near(a, 0.05, 4), n=4, start=1004, source="cam2")])
    (rerun,) = tag_and_write(mem, store, [unknown(near(a, 0.05, 5), n=1, start=1000, run="run-2")])
    assert later not in together and apart in [*together, later] and rerun in [*together, later]  # joined one


def test_named_and_weak_tracks_get_no_stranger_id(store: HistoryStore) -> None:
    a = person(1)
    ids = tag_and_write(memory(), store, [unknown(a, identity="alice"), unknown(a, faces=1, n=2),
                                          unknown(a, score=0.3, n=3)])
    assert ids == [None, None, None]
    assert store.strangers() == []


def test_only_the_last_days_are_compared(store: HistoryStore) -> None:
    a = person(1)
    mem = memory(days=2)
    (old,) = tag_and_write(mem, store, [unknown(a, start=0.0)])
    (within,) = tag_and_write(mem, store, [unknown(near(a, 0.05, 1), start=1.5 * DAY_S, n=2)])
    (past,) = tag_and_write(mem, store, [unknown(near(a, 0.05, 2), start=10 * DAY_S, n=3)])
    assert within == old and past != old


def test_a_memory_loaded_later_and_another_writer_see_each_others_strangers(store: HistoryStore, tmp_path) -> None:
    a, b = person(1), person(2)
    (sa,) = tag_and_write(memory(), store, [unknown(a)])  # a first run, then gone
    mem1, mem2 = memory(), memory()
    with HistoryStore.open(tmp_path / "h.db") as other:
        (again,) = tag_and_write(mem1, store, [unknown(near(a, 0.05, 1), n=2, start=2000)])  # loaded from the store
        (sb,) = tag_and_write(mem2, other, [unknown(b, n=3, run="run-2")])  # mem2 loads a's row too
        (sb1,) = tag_and_write(mem1, store, [unknown(near(b, 0.05, 2), n=4, start=3000)])  # refreshed: sees run-2's b
        (sa2,) = tag_and_write(mem2, other, [unknown(near(a, 0.05, 3), n=5, run="run-2", start=4000)])
    assert again == sa == sa2 and sb1 == sb != sa
    assert list(mem1.ids) == [1, 2, 3, 4] and list(mem2.ids) == [1, 2, 3, 4, 5]  # each row once, own writes too


def test_a_deleted_stranger_is_not_matched_again_by_a_running_memory(store: HistoryStore) -> None:
    from sqlalchemy import delete

    from stream.history import tables as T

    a, b = person(1), person(2)
    mem = memory()
    old, kept = tag_and_write(mem, store, [unknown(a), unknown(b, n=2, start=2000)])
    with store.engine.begin() as conn:  # what forget does to a named stranger, from another process
        gone = [r.id for r in store.tracks() if r.stranger_id == old]
        conn.execute(delete(T.track_means).where(T.track_means.c.id.in_(gone)))
        conn.execute(delete(T.tracks).where(T.tracks.c.id.in_(gone)))
        conn.execute(delete(T.strangers).where(T.strangers.c.id == stranger_number(old)))
    new = [unknown(near(a, 0.05, 1), n=3, start=3000), unknown(near(b, 0.05, 2), n=4, start=3000, source="cam2")]
    assert mem.tag(store, new, now=5000.0) == 1  # a is a new stranger; b is still remembered
    assert new[1].stranger_id == kept and not set(gone) & set(mem.ids.tolist())


@pytest.mark.slow  # a recorder's thread, or 120 commits
def test_the_memory_is_bounded_by_capacity(store: HistoryStore) -> None:
    mem = memory(capacity=100)
    for k in range(12):
        tag_and_write(mem, store, [unknown(person(10 * k + j), n=10 * k + j) for j in range(10)])
    assert len(mem) <= 100 + 100 // 8
    assert list(mem.ids) == sorted(mem.ids) and mem.ids[-1] == 120  # the newest are kept
    cold = memory(capacity=50)
    cold.refresh(store)
    assert len(cold) == 50 and list(cold.ids) == list(range(71, 121))


# -- the store's queries --------------------------------------------------------------------------------

def test_strangers_summarise_times_seen_cameras_and_best_track(store: HistoryStore) -> None:
    a, b = person(1), person(2)
    mem = memory()
    tag_and_write(mem, store, [unknown(a, start=1000, faces=6), unknown(b, start=1000, n=2)])
    tag_and_write(mem, store, [unknown(near(a, 0.05, 1), start=3000, n=3, source="cam2", faces=30),
                               unknown(near(a, 0.05, 2), start=5000, n=4, faces=8)])
    (sa, sb) = store.strangers()  # most recently seen first: a (5005), then b (1005)
    assert (sa.stranger_id, sa.tracks, sa.first_seen, sa.last_seen, sa.sources, sa.name) == \
        ("stranger-000001", 3, 1000.0, 5005.0, ["cam1", "cam2"], None)
    assert sb.stranger_id == "stranger-000002" and sb.tracks == 1
    (best,) = store.get([sa.best_track_id])
    assert best.track_id == 3  # the most embedded of a's tracks
    (recent,) = store.strangers(since=2000)  # "seen N times since"
    assert recent.stranger_id == sa.stranger_id and recent.tracks == 2 and recent.first_seen == 3000.0
    assert [s.stranger_id for s in store.strangers(until=1500)] == ["stranger-000001", "stranger-000002"]


def test_naming_a_stranger_names_their_whole_history(store: HistoryStore) -> None:
    a, b = person(1), person(2)
    mem = memory()
    tag_and_write(mem, store, [unknown(a), unknown(b, n=2), unknown(near(a, 0.05, 1), start=9000, n=3)])
    assert store.name_stranger("stranger-000001", "  Alice Doe ") == 2
    assert {r.track_id: r.identity for r in store.tracks()} == {1: "Alice Doe", 2: None, 3: "Alice Doe"}
    assert [(s.stranger_id, s.name) for s in store.strangers(named=True)] == [("stranger-000001", "Alice Doe")]
    assert [s.stranger_id for s in store.strangers(named=False)] == ["stranger-000002"]
    assert store.name_stranger("stranger-1", "Alice B. Doe") == 2  # renaming; any spelling of the number
    assert {r.identity for r in store.tracks(identity="Alice B. Doe")} == {"Alice B. Doe"}
    with pytest.raises(FacestreamError, match="stranger-000009: no such stranger"):
        store.name_stranger("stranger-000009", "Bob")
    with pytest.raises(FacestreamError, match="not a usable name"):
        store.name_stranger("stranger-000002", "a/b")
    assert store.tracks(unknown=True)[0].track_id == 2  # nothing changed by the refusals


# -- the recorder ---------------------------------------------------------------------------------------

def _record(url: str, run: str, means: list[np.ndarray], model: str = "m", **config) -> HistoryRecorder:
    """A recorder that sees one unknown track per mean (6 embeddings each, like a real run's) and ends."""
    from stream.events.schema import Event

    cfg = HistoryConfig(url=url, strangers_threshold=config.pop("threshold", TH), **config)
    rec = HistoryRecorder(url, cfg, TrackModel(model, SPACE, DIM), run)
    crop = np.zeros((8, 8, 3), np.uint8)
    for n, mean in enumerate(means, 1):
        track = rec.open.setdefault(("cam1", n), OpenTrack())
        for f in range(6):
            track.add(f, f / 10, 1000.0 * n + f, mean, crop, 1.0, 0.9, 2)
        rec.write(Event(type="track_ended", source="cam1", track_id=n, frame=6, pts=0.6, ts=1000.0 * n + 6))
    rec.close()
    return rec


@pytest.mark.slow  # a recorder's thread, or 120 commits
def test_two_runs_recorders_give_one_stranger_one_id(tmp_path: Path) -> None:
    url = str(tmp_path / "h.db")
    a, b = person(1), person(2)
    first = _record(url, "run-1", [near(a, 0.05, 1), near(b, 0.05, 2)])
    second = _record(url, "run-2", [near(b, 0.08, 3), near(a, 0.08, 4), person(3)])
    assert (first.new_strangers, second.new_strangers) == (2, 1)
    with HistoryStore.open(url) as store:
        by_run = {(r.run_id, r.track_id): r.stranger_id for r in store.tracks()}
    assert by_run[("run-1", 1)] == by_run[("run-2", 2)] != by_run[("run-1", 2)] == by_run[("run-2", 1)]
    assert by_run[("run-2", 3)] not in {by_run[("run-1", 1)], by_run[("run-1", 2)]}


@pytest.mark.slow  # a recorder's thread, or 120 commits
def test_strangers_can_be_turned_off_and_an_unmeasured_model_gets_none(tmp_path: Path) -> None:
    url = str(tmp_path / "h.db")
    off = _record(url, "run-1", [person(1)], strangers=False)
    unmeasured = _record(url, "run-2", [person(1)], model="unmeasured", threshold=None)
    assert off.strangers is None and unmeasured.strangers is None
    with HistoryStore.open(url) as store:
        assert [r.stranger_id for r in store.tracks()] == [None, None]


def test_the_calibration_labels_pairs_as_it_says() -> None:
    """tools/bench_search.py calibrate-strangers: which pairs are the same person and which are two."""
    from types import SimpleNamespace

    from tools.bench_search import stranger_pairs

    def t(label, first, last, n, mean):
        return SimpleNamespace(label=label, first_frame=first, last_frame=last, track_id=n, source="clip",
                               faces=MIN_FACES, detector_score=MIN_DETECTOR_SCORE, mean=mean)

    a, b, c = person(1), person(2), person(3)
    run1 = [t("lin", 0, 17, 1, a), t("lin", 82, 209, 2, near(a, 0.2, 1)), t("alex", 0, 17, 3, b),
            t("other", 211, 268, 4, c), t("other", 211, 267, 5, near(c, 0.1, 2)), t(None, 100, 110, 6, c)]
    run2 = [t("lin", 0, 12, 1, near(a, 0.05, 3)), t("other", 211, 268, 4, c)]
    same, different = stranger_pairs([run1, run2])
    assert len(same["same appearance"]) == 1  # lin 0-17 and lin 0-12 of the rerun
    assert len(same["another appearance"]) == 2  # lin 82-209 against each of those
    pairs = [tuple(sorted((x, y))) for _, x, y in different]
    assert ("other#4", "other#5") in pairs  # "other" but on screen together in one run: two people
    assert ("?#6", "lin#2") in pairs  # an unlabelled face on screen with Lin: someone else
    assert sum("alex" in p for p in pairs) == 6  # against lin x3 and other x3
    assert len(different) == 3 + 12 + 2  # lin/alex, named/other, the two on-screen pairs; other#4 across runs: unknown


def test_a_deleted_strangers_number_is_never_handed_out_again(store: HistoryStore) -> None:
    from stream.history import tables as T

    first = store.new_stranger("dlib-resnet-v1", 1.0)
    second = store.new_stranger("dlib-resnet-v1", 2.0)
    with store.engine.begin() as conn:  # the newest stranger forgotten
        conn.execute(T.strangers.delete().where(T.strangers.c.id == second))
    assert store.new_stranger("dlib-resnet-v1", 3.0) > second > first
