"""The search cache beside a SQLite store: the same hits as reading the store, kept fresh by appending
the rows written since, rebuilt when rows were deleted (a deleted track is never found)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete

from stream.history import search_cache
from stream.history import tables as T
from stream.history.search import query_vector, search_blocks
from stream.history.search_cache import cache_dir, discard, fresh_segments, search_segments
from stream.history.store import HistoryStore, NewTrack

SPACE = "dlib-resnet-v1"


def _tracks(embs: np.ndarray, first: int, space: str = SPACE) -> list[NewTrack]:
    return [NewTrack(
        run_id="r", origin=None, source=f"cam{i % 3}", track_id=i, started_at=float(i), ended_at=float(i) + 2,
        start_pts=float(i), end_pts=float(i) + 2, first_frame=0, last_frame=60, video=None, identity=None,
        score=None, distance=None, detector_score=0.6 + 0.1 * (i % 4), faces=1 + i % 9, model=space,
        embedding_space=space, dim=embs.shape[1], mean=e, best=e[None], thumbnail=None)
        for i, e in enumerate(embs, first)]


def _people(n: int, seed: int, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    return (centres[rng.integers(0, 8, n)] * 0.5 + rng.normal(scale=0.1, size=(n, dim))).astype(np.float32)


FILTERS = [{}, {"source": "cam1"}, {"since": 40.0, "until": 120.0}, {"min_faces": 5, "min_detector_score": 0.75},
           {"source": "nowhere"}]


def _both(store: HistoryStore, q: np.ndarray, **f) -> tuple[list, list]:
    window = {k: f.get(k) for k in ("since", "until", "source")}
    blocks = store.iter_embeddings(SPACE, kind="mean", block=37, min_faces=f.get("min_faces", 0),
                                   min_detector_score=f.get("min_detector_score", 0.0), **window)
    want = search_blocks(q, blocks, 0.9, 25)
    got = search_segments(fresh_segments(store, SPACE), q, 0.9, 25, **f)
    return want, got


def _same(want, got) -> None:
    assert [h.id for h in got] == [h.id for h in want]
    np.testing.assert_allclose([h.distance for h in got], [h.distance for h in want], atol=1e-5)


@pytest.mark.slow
def test_cached_search_is_the_store_search_through_appends_and_deletes(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(search_cache, "FILL_BLOCK", 50)  # several blocks per fill
    monkeypatch.setattr(search_cache, "MAX_SEGMENTS", 3)
    db = tmp_path / "h.db"
    rng = np.random.default_rng(1)
    with HistoryStore.open(db) as store:
        stored = _people(180, 0)
        store.write_tracks(_tracks(stored, 0))
        store.write_tracks(_tracks(np.ones((3, 32), np.float32), 500, space="other-space"))  # never mixed in
        queries = [query_vector(e + rng.normal(scale=0.05, size=16)) for e in stored[:6]]
        for q in queries:
            for f in FILTERS:
                _same(*_both(store, q, **f))
            assert _both(store, q)[1]
        assert len(list(cache_dir(store.url).glob("*.meta.npz"))) == 1
        for batch in range(4):  # runs write more: each search appends what is new, then merges
            store.write_tracks(_tracks(_people(20, 10 + batch), 200 + 20 * batch))
            for f in FILTERS[:3]:
                _same(*_both(store, queries[batch], **f))
            assert 1 <= len(list(cache_dir(store.url).glob("*.meta.npz"))) <= 3
        want, got = _both(store, queries[0])
        assert len(got) >= 10
        gone = [h.id for h in got[:5]]
        with store.engine.begin() as conn:  # as forget and retention do
            conn.execute(delete(T.track_means).where(T.track_means.c.id.in_(gone)))
            conn.execute(delete(T.tracks).where(T.tracks.c.id.in_(gone)))
        want, got = _both(store, queries[0])
        _same(want, got)
        assert not set(gone) & {h.id for h in got}
        segments = fresh_segments(store, SPACE)
        assert sum(len(s.ids) for s in segments) == 255 and not set(gone) & set(np.concatenate(
            [s.ids for s in segments]).tolist())  # rebuilt without them, not merely filtered
        discard(store.url)
        assert not cache_dir(store.url).exists()


def test_a_broken_cache_is_rebuilt_and_a_postgres_url_has_none(tmp_path: Path):
    db = tmp_path / "h.db"
    with HistoryStore.open(db) as store:
        store.write_tracks(_tracks(_people(40, 3), 0))
        q = query_vector(_people(1, 4)[0])
        _same(*_both(store, q))
        for meta in cache_dir(store.url).glob("*.meta.npz"):
            meta.write_bytes(b"PK\x03\x04 half a write")
        _same(*_both(store, q))
    assert cache_dir("postgresql://u@127.0.0.1:5432/h") is None


@pytest.mark.slow
def test_the_cli_finds_the_same_with_and_without_the_cache(cli, tmp_path: Path, default_model):
    """`search` through the cache and with --no-cache: the same tracks, the quality filter in both."""
    import json

    from stream.photos import PhotoEmbedder
    from tests.conftest import media_path

    with PhotoEmbedder(default_model) as photos:
        from stream.images import read_image

        lin = photos.embed(photos.faces(read_image(media_path("lin-manuel-miranda.png"))))[0]
    rng = np.random.default_rng(5)
    near = lin + rng.normal(scale=0.02, size=(30, 128)).astype(np.float32)
    far = rng.normal(scale=0.1, size=(30, 128)).astype(np.float32)
    db = tmp_path / "h.db"
    with HistoryStore.open(db) as store:
        store.write_tracks(_tracks(np.concatenate([near, far]), 1))

    def ids(*extra):
        proc = cli("search", media_path("lin-manuel-miranda.png"), "--history", db, "--json", *extra, check=True)
        return [json.loads(line)["id"] for line in proc.stdout.splitlines()]

    cached, direct = ids(), ids("--no-cache")
    assert cached == direct and cached and set(cached) <= set(range(1, 31))
    assert all(1 + i % 9 >= 5 and i % 4 for i in cached)  # tracks embedded < 5 times, scored < 0.7 left out
    assert cache_dir(f"sqlite:///{db}").is_dir()


@pytest.mark.slow
def test_forget_and_prune_drop_the_cache(tmp_path: Path):
    """The cache holds the means of everyone searched: forgetting a name (or pruning) deletes it."""
    from dataclasses import replace

    db = tmp_path / "h.db"
    embs = _people(30, 6)
    with HistoryStore.open(db) as store:
        store.write_tracks([replace(t, identity="ann" if i < 10 else None) for i, t in enumerate(_tracks(embs, 0))])
        q = query_vector(embs[0])
        assert 1 in {h.id for h in search_segments(fresh_segments(store, SPACE), q, 0.5, 50)}
        assert cache_dir(store.url).is_dir()
        store.forget("ann")
        assert not cache_dir(store.url).exists()
        assert not {h.id for h in search_segments(fresh_segments(store, SPACE), q, 2.0, 50)} & set(range(1, 11))
        assert cache_dir(store.url).is_dir()
        assert store.prune(keep_days=None, max_bytes=1) > 0
        assert not cache_dir(store.url).exists()


@pytest.mark.slow
def test_an_unchanged_store_is_not_asked_again(tmp_path: Path, monkeypatch):
    """Nothing committed since the last search: the cache answers without a query (at 1M rows the
    check's count costs more than the search); a commit brings the check back."""
    db = tmp_path / "h.db"
    embs = _people(20, 8)
    with HistoryStore.open(db) as store:
        store.write_tracks(_tracks(embs, 0))
        q = query_vector(embs[3])
        first = search_segments(fresh_segments(store, SPACE), q, 0.5, 10)
        asked = []
        monkeypatch.setattr(search_cache, "_count_through", lambda *a: asked.append(a) or 0)
        assert search_segments(fresh_segments(store, SPACE), q, 0.5, 10) == first and asked == []
        store.write_tracks(_tracks(embs[3:4], 20))
        monkeypatch.undo()
        again = search_segments(fresh_segments(store, SPACE), q, 0.5, 10)
        assert 21 in {h.id for h in again}  # the new row (a copy of the query's track) is found


def test_a_commit_the_files_signature_misses_is_still_seen(tmp_path: Path, monkeypatch):
    """A commit in the same clock tick as the last check, into a WAL reused at the same size, leaves
    the files' signature as it was: the newest row id still shows it."""
    db = tmp_path / "h.db"
    embs = _people(20, 8)
    with HistoryStore.open(db) as store:
        store.write_tracks(_tracks(embs, 0))
        q = query_vector(embs[3])
        fresh_segments(store, SPACE)
        monkeypatch.setattr(search_cache, "_signature", lambda url: [[1, 2, 3], [4, 5, 6]])
        fresh_segments(store, SPACE)  # the state now holds the frozen signature
        store.write_tracks(_tracks(embs[3:4], 20))
        again = search_segments(fresh_segments(store, SPACE), q, 0.5, 10)
        assert 21 in {h.id for h in again}
