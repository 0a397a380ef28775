"""The history store on a real SQLite file: writes, the queries' filters, embeddings in blocks, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.history.store import Decision, HistoryStore, NewTrack, RunRow, database_url

DIM = 8


def track(n: int, *, identity: str | None = "alice", source: str = "cam1", start: float = 1000.0,
          space: str = "space-a", best: int = 3, thumbnail: bytes | None = b"\xff\xd8jpeg") -> NewTrack:
    rng = np.random.default_rng(n)
    return NewTrack(run_id="run-1", origin=None, source=source, track_id=n, started_at=start, ended_at=start + 5,
                    start_pts=start - 1000, end_pts=start - 995, first_frame=n * 10, last_frame=n * 10 + 9,
                    video=None, identity=identity, score=0.9 if identity else None, distance=0.3, detector_score=0.95,
                    faces=4, model="m", embedding_space=space, dim=DIM, mean=rng.normal(size=DIM).astype(np.float32),
                    best=rng.normal(size=(best, DIM)).astype(np.float32), thumbnail=thumbnail)


@pytest.fixture
def store(tmp_path: Path):
    with HistoryStore.open(tmp_path / "h.db") as s:
        yield s


def test_a_track_reads_back_as_written(store: HistoryStore) -> None:
    new = track(1)
    (row_id,) = store.write_tracks([new])
    (row,) = store.get([row_id])
    assert row.id == row_id and row.identity == "alice" and row.track_id == 1 and row.faces == 4
    assert (row.started_at, row.ended_at, row.first_frame, row.last_frame) == (1000.0, 1005.0, 10, 19)
    assert (row.model, row.embedding_space, row.dim) == ("m", "space-a", DIM)
    assert store.thumbnail(row_id) == b"\xff\xd8jpeg"
    mean, best = store.embeddings(row_id)
    np.testing.assert_array_equal(mean, new.mean)
    np.testing.assert_array_equal(best, new.best)


def test_filters_select_what_they_name(store: HistoryStore) -> None:
    ids = store.write_tracks([track(1, start=100), track(2, identity="bob", start=200),
                              track(3, identity=None, source="cam2", start=300), track(4, start=400)])
    assert [r.id for r in store.tracks()] == ids
    assert [r.track_id for r in store.tracks(identity="alice")] == [1, 4]
    assert [r.track_id for r in store.tracks(source="cam2")] == [3]
    assert [r.track_id for r in store.tracks(unknown=True)] == [3]
    assert [r.track_id for r in store.tracks(unknown=False)] == [1, 2, 4]
    # a track counts when it overlaps the window: 200..205 ends after 203
    assert [r.track_id for r in store.tracks(since=203, until=350)] == [2, 3]
    assert [r.track_id for r in store.tracks(limit=2)] == [1, 2]
    assert [r.track_id for r in store.get([ids[2], 999, ids[0]])] == [3, 1]
    assert store.thumbnail(999) is None


def test_embeddings_come_in_blocks_of_one_space(store: HistoryStore) -> None:
    ids = store.write_tracks([track(n, space="space-b" if n == 3 else "space-a") for n in range(1, 8)])
    blocks = list(store.iter_embeddings("space-a", block=2))
    assert [len(b[0]) for b in blocks] == [2, 2, 2]
    got_ids = np.concatenate([b[0] for b in blocks])
    assert got_ids.dtype == np.int64 and list(got_ids) == [i for i in ids if i != ids[2]]
    embs = np.concatenate([b[1] for b in blocks])
    assert embs.dtype == np.float32 and embs.shape == (6, DIM)
    np.testing.assert_array_equal(embs[0], store.embeddings(ids[0])[0])
    best_ids, best = zip(*store.iter_embeddings("space-a", kind="best", block=4))
    assert list(np.concatenate(best_ids)) == [i for i in ids if i != ids[2] for _ in range(3)]
    assert np.concatenate(best).shape == (18, DIM)
    assert [len(b[0]) for b in store.iter_embeddings("space-a", source="cam9")] == []


def test_decisions_and_runs(store: HistoryStore) -> None:
    store.begin_run(RunRow("run-1", 10.0, None, None, "live", "m"))
    store.begin_run(RunRow("run-1", 99.0, None, None, "live", "m"))  # a restarted publisher: the first stays
    store.write([track(1)], [Decision("run-1", "cam1", 1, 1001.0, 1.0, 10, "alice", 0.8, 0.3)])
    store.end_run("run-1", 20.0)
    (run,) = store.runs()
    assert (run.started_at, run.ended_at, run.kind) == (10.0, 20.0, "live")
    (decision,) = store.decisions("run-1", "cam1", 1)
    assert decision.identity == "alice" and decision.frame == 10


def test_the_schema_is_alembics_head_and_matches_the_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from stream.history import migrate
    from stream.history.tables import metadata

    store = HistoryStore.open(tmp_path / "h.db")
    try:
        assert migrate.current(store.engine) == migrate.head()
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()
    HistoryStore.open(tmp_path / "h.db").close()  # a current store opens as it is
    assert sqlite3.connect(tmp_path / "h.db").execute("pragma journal_mode").fetchone() == ("wal",)


def test_a_store_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    HistoryStore.open(tmp_path / "h.db").close()
    with sqlite3.connect(tmp_path / "h.db") as conn:
        conn.execute("update alembic_version set version_num = '9999'")
    with pytest.raises(FacestreamError, match="9999 is newer"):
        HistoryStore.open(tmp_path / "h.db")


def test_urls(tmp_path: Path) -> None:
    assert database_url(tmp_path / "h.db") == f"sqlite:///{tmp_path / 'h.db'}"
    assert database_url("postgresql://u@127.0.0.1/db") == "postgresql+psycopg://u@127.0.0.1/db"
    with pytest.raises(FacestreamError, match="not a history store"):
        database_url("mysql://x")
    with pytest.raises(FacestreamError, match=r"u:\*\*\*@127.0.0.1:1/db") as err:  # refused, or no psycopg
        HistoryStore.open("postgresql://u:secretpw@127.0.0.1:1/db")
    assert "secretpw" not in str(err.value)
    with pytest.raises(FacestreamError, match="no such history store"):
        HistoryStore.open(tmp_path / "absent.db", create=False)
    (tmp_path / "notes.txt").write_text("not a database at all, just some text to fill a page\n" * 100)
    with pytest.raises(FacestreamError, match="notes.txt: cannot open the history store"):
        HistoryStore.open(tmp_path / "notes.txt", create=False)
    sqlite3.connect(tmp_path / "other.db").execute("create table t (x)").connection.close()
    with pytest.raises(FacestreamError, match="other.db: not a history store"):
        HistoryStore.open(tmp_path / "other.db", create=False)
    with pytest.raises(FacestreamError, match="no such folder"):
        HistoryStore.open(tmp_path / "no" / "h.db")
