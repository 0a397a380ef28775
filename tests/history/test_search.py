"""Search by face: the blocked exact search on arrays, and `facestream search` over a real store filled
from a real run of the Hamilton clip (its saved tracks, labelled in search_labels.json)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.history.search import (
    PHOTO_TO_TRACK_THRESHOLDS,
    block_distances,
    exact_top_k,
    photo_to_track_threshold,
    query_vector,
    search_blocks,
    unit_rows,
)
from tests.conftest import assert_one_line_error, media_path

LIN, ALEX = "lin-manuel-miranda", "alex-lacamoire"


def _blocks(ids: np.ndarray, embs: np.ndarray, size: int):
    for start in range(0, len(ids), size):
        yield ids[start:start + size], embs[start:start + size]


def test_block_distances_are_unit_sphere_euclidean():
    rng = np.random.default_rng(0)
    q, b = rng.normal(size=16), rng.normal(size=(50, 16)) * 3  # norms far from 1: scaled away
    d = block_distances(query_vector(q), b)
    want = np.linalg.norm(unit_rows(b) - unit_rows(q), axis=1)
    assert np.allclose(d, want, atol=1e-5)


def test_search_ranks_within_threshold_and_limits():
    rng = np.random.default_rng(1)
    embs = unit_rows(rng.normal(size=(1000, 32)))
    q = query_vector(embs[7] + 0.05 * rng.normal(size=32))
    ids = np.arange(1000, 2000, dtype=np.int64)
    all_d = block_distances(q, embs)
    threshold = float(np.sort(all_d)[9]) + 1e-6  # exactly the 10 nearest are within
    hits = search_blocks(q, _blocks(ids, embs, 64), threshold, limit=100)
    assert [h.id for h in hits] == list(ids[np.argsort(all_d)[:10]])
    assert hits[0].id == 1007 and all(a.distance <= b.distance for a, b in itertools.pairwise(hits))
    assert [h.id for h in search_blocks(q, _blocks(ids, embs, 64), threshold, limit=3)] == [h.id for h in hits[:3]]
    assert search_blocks(q, _blocks(ids, embs, 64), 1e-3, limit=10) == []


def test_repeated_ids_count_at_their_nearest_across_blocks():
    # kind="best": one row per best crop, a track's rows may straddle a block boundary
    q = query_vector(np.array([1.0, 0.0]))
    ids = np.array([5, 5, 6, 5], np.int64)
    embs = np.array([[0.0, 1.0], [1.0, 0.1], [1.0, 0.5], [1.0, 1.0]], np.float32)
    hits = search_blocks(q, _blocks(ids, embs, 2), threshold=2.0, limit=10)
    assert [h.id for h in hits] == [5, 6]
    assert hits[0].distance == pytest.approx(np.linalg.norm(unit_rows(np.array([1.0, 0.1])) - [1, 0]), abs=1e-5)


def test_exact_top_k_matches_a_full_sort():
    rng = np.random.default_rng(2)
    embs = unit_rows(rng.normal(size=(5000, 16)))
    q = query_vector(rng.normal(size=16))
    assert list(exact_top_k(q, embs, 20, block=700)) == list(np.argsort(block_distances(q, embs), kind="stable")[:20])


def test_searchable_tracks_are_embedded_often_and_scored_high():
    from types import SimpleNamespace

    from stream.history.search import searchable

    assert searchable(SimpleNamespace(faces=5, detector_score=0.7))
    assert not searchable(SimpleNamespace(faces=4, detector_score=0.99))
    assert not searchable(SimpleNamespace(faces=50, detector_score=0.62))
    assert searchable(SimpleNamespace(faces=1, detector_score=0.1), min_faces=0, min_score=0.0)


def test_threshold_is_the_measured_one_or_says_what_to_pass():
    assert photo_to_track_threshold("dlib-resnet-v1", "euclidean", 0.6) == PHOTO_TO_TRACK_THRESHOLDS["dlib-resnet-v1"]
    assert photo_to_track_threshold("some-arcface", "cosine", 0.5) == pytest.approx(1.0)
    with pytest.raises(FacestreamError, match="--threshold"):
        photo_to_track_threshold("unmeasured", "euclidean", 0.6)


# -- on a real store, from a real run ------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_store(cli, default_model, tmp_path_factory):
    """A SQLite history store holding the clip's saved unknown tracks (an empty gallery: every track is
    unknown), and row id -> labelled track."""
    from stream.history.store import HistoryStore
    from tests.history.search_set import labelled_tracks, write_to_store

    root = tmp_path_factory.mktemp("search")
    unknowns, events = root / "unknowns", root / "events.jsonl"
    cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--save-unknowns", unknowns, "--events-out",
        events, "--no-progress", check=True)
    tracks = labelled_tracks(unknowns, events)
    db = root / "history.db"
    with HistoryStore.open(db) as store:
        by_id = write_to_store(store, tracks, default_model, video=str(media_path("short_hamilton_clip.mp4")))
    return db, by_id


def _search(cli, db, photo, *extra):
    proc = cli("search", media_path(photo), "--history", db, "--json", *extra, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(("photo", "person", "other"), [
    ("lin-manuel-miranda.png", LIN, ALEX), ("alex-lacamoire.png", ALEX, LIN)])
def test_search_finds_the_person_and_not_the_other(cli, clip_store, photo, person, other):
    db, by_id = clip_store
    labels = {i: t.label for i, t in by_id.items()}
    assert sum(label == person for label in labels.values()) >= 2, labels  # the set has their tracks
    hits = _search(cli, db, photo)
    found = [labels[h["id"]] for h in hits]
    assert other not in found, hits
    assert found.count(person) == sum(label == person for label in labels.values()), hits  # every one of them
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    first = hits[0]
    assert first["video"].endswith("short_hamilton_clip.mp4") and first["end_pts"] >= first["start_pts"] >= 0


@pytest.mark.slow
def test_precision_and_recall_on_the_labelled_clip(default_model, clip_store):
    """The measured rule's precision and recall on the clip, both photos: every labelled track of the person
    found, none of anyone else's (the figures in docs/history.md, "Search")."""
    from stream.history.search import photo_query, search_blocks
    from stream.history.store import HistoryStore

    db, by_id = clip_store
    threshold = PHOTO_TO_TRACK_THRESHOLDS[default_model.name]
    tp = fp = fn = 0
    with HistoryStore.open(db, create=False) as store:
        for person in (LIN, ALEX):
            query = photo_query(media_path(f"{person}.png"), default_model)
            blocks = store.iter_embeddings(default_model.manifest.embedding_space, block=3)  # several blocks
            found = {h.id for h in search_blocks(query.vector, blocks, threshold, limit=100)}
            truth = {i for i, t in by_id.items() if t.label == person}
            labelled = {i for i, t in by_id.items() if t.label is not None}
            tp += len(found & truth)
            fp += len((found & labelled) - truth)
            fn += len(truth - found)
    assert tp >= 4 and fp == 0 and fn == 0, (tp, fp, fn)


@pytest.mark.slow
def test_the_models_photo_threshold_would_return_the_wrong_person(default_model, clip_store):
    """The defect the measured rule fixes: "every track within the model's threshold" (dlib's 0.6, on its
    own scale) has no margin: Lin-Manuel Miranda's longest track lies 0.597-0.604 from Alex Lacamoire's
    photo, run to run (the timing of re-embeds moves a track's mean), so it is in or just out; the search's
    rule keeps it out."""
    from stream.images import read_image
    from stream.photos import PhotoEmbedder, choose_face

    _, by_id = clip_store
    image = read_image(media_path(f"{ALEX}.png"))
    with PhotoEmbedder(default_model) as photos:
        faces = photos.faces(image)
        raw = photos.embed(faces)[choose_face(faces, image.shape, "largest")]
    nearest_lin = min(float(np.linalg.norm(t.mean - raw)) for t in by_id.values() if t.label == LIN)
    assert nearest_lin <= default_model.manifest.threshold + 0.02, nearest_lin
    from stream.history.search import photo_query

    query = photo_query(media_path(f"{ALEX}.png"), default_model)
    ids = np.array(list(by_id), np.int64)
    means = np.stack([by_id[i].mean for i in ids])
    found = search_blocks(query.vector, [(ids, means)], PHOTO_TO_TRACK_THRESHOLDS[default_model.name], 100)
    assert found and not any(by_id[h.id].label == LIN for h in found)


@pytest.mark.slow
def test_thumbnails_filters_and_limit(cli, clip_store, tmp_path):
    db, _ = clip_store
    hits = _search(cli, db, "lin-manuel-miranda.png", "--thumbs", tmp_path / "thumbs", "--limit", "1")
    assert len(hits) == 1
    thumb = tmp_path / "thumbs" / f"{hits[0]['id']}.jpg"
    assert hits[0]["thumbnail"] == str(thumb) and thumb.read_bytes()[:2] == b"\xff\xd8"
    assert _search(cli, db, "lin-manuel-miranda.png", "--camera", "another-camera") == []
    assert _search(cli, db, "lin-manuel-miranda.png", "--since", "100000") == []  # stored at pts: all before


@pytest.mark.slow
def test_one_line_errors(cli, clip_store, tmp_path, default_model):
    from stream.history.store import HistoryStore, NewTrack

    db, _ = clip_store
    assert_one_line_error(cli("search", media_path("lin-manuel-miranda.png"), "--history", tmp_path / "nope.db"),
                          "no such history store")
    empty = tmp_path / "empty.db"
    HistoryStore.open(empty).close()
    assert_one_line_error(cli("search", media_path("lin-manuel-miranda.png"), "--history", empty), "empty")
    blank = tmp_path / "blank.png"
    import cv2

    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    assert_one_line_error(cli("search", blank, "--history", db), "no face found")
    other = tmp_path / "other.db"
    with HistoryStore.open(other) as store:
        store.write_tracks([NewTrack(
            run_id="r", origin=None, source="cam", track_id=1, started_at=0, ended_at=1, start_pts=0, end_pts=1,
            first_frame=0, last_frame=1, video=None, identity=None, score=None, distance=None, detector_score=0.9,
            faces=1, model="facenet-x", embedding_space="facenet-x", dim=512, mean=np.ones(512, np.float32),
            best=np.ones((1, 512), np.float32))])
    assert_one_line_error(cli("search", media_path("lin-manuel-miranda.png"), "--history", other), "facenet-x")
    proc = cli("search", media_path("two_people.jpg"), "--history", db, "--json")
    assert proc.returncode == 0 and "searching for the largest" in proc.stderr, proc.stderr


# -- on the store `run --history` fills ------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_store(cli, tmp_path_factory):
    """`run --history` over the clip with no gallery (every track unknown): the store, and row id -> label."""
    from stream.history.store import HistoryStore
    from tests.history.search_set import LABELS, first_boxes, label_of

    root = tmp_path_factory.mktemp("run-history")
    db, events = root / "history.db", root / "events.jsonl"
    cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--history", db, "--events-out", events,
        "--no-progress", check=True)
    labels, boxes = json.loads(LABELS.read_text()), first_boxes(events)
    with HistoryStore.open(db, create=False) as store:
        rows = store.tracks()
    return db, {r.id: label_of(r.first_frame, r.last_frame, boxes.get(r.track_id), labels) for r in rows}, rows


@pytest.mark.slow
@pytest.mark.parametrize(("photo", "person", "other"), [
    ("lin-manuel-miranda.png", LIN, ALEX), ("alex-lacamoire.png", ALEX, LIN)])
def test_search_a_run_history(cli, run_store, photo, person, other):
    from stream.history.search import searchable

    db, labels, rows = run_store
    hits = _search(cli, db, photo)
    found = [labels[h["id"]] for h in hits]
    theirs = [r.id for r in rows if labels[r.id] == person and searchable(r)]  # the spans also hold a hand, a patch
    assert sorted(h["id"] for h in hits if labels[h["id"]] == person) == sorted(theirs) and len(theirs) >= 2, hits
    assert set(found) == {person}, hits  # no one else, and no unlabelled false detection either
    assert all(h["video"].endswith("short_hamilton_clip.mp4") for h in hits)


@pytest.mark.slow
def test_short_low_scoring_tracks_are_left_out(cli, run_store):
    """A run's history keeps every track, and a mean of a few blurred crops (the clip's audience, a hand)
    lies as near Alex Lacamoire's photo as his own tracks: searched only with --all-tracks."""
    from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES

    db, _, rows = run_store
    weak = {r.id for r in rows if r.faces < MIN_FACES or r.detector_score < MIN_DETECTOR_SCORE}
    assert weak & {h["id"] for h in _search(cli, db, "alex-lacamoire.png", "--all-tracks")}
    assert not weak & {h["id"] for h in _search(cli, db, "alex-lacamoire.png")}
