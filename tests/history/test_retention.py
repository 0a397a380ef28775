"""Erasing a person and pruning by age and size, on a real SQLite file: what goes, what stays, and that
the deleted bytes are gone from the file and its WAL, not only from the queries."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, select

from stream.history import retention, search_cache
from stream.history import tables as T
from stream.history.store import Decision, HistoryStore, RunRow, database_url
from tests.history.test_store import track
from tests.support.postgres import postgres_server

DAY = 86400.0
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def any_store(request, tmp_path: Path):
    """A fresh store on SQLite, and on a fresh database of the real PostgreSQL server."""
    if request.param == "sqlite":
        url = str(tmp_path / "h.db")
    else:
        server = request.getfixturevalue("pg")
        name = f"t{uuid.uuid4().hex[:12]}"
        engine = create_engine(database_url(server.url), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        url = server.url.rsplit("/", 1)[0] + "/" + name
    with HistoryStore.open(url) as s:
        yield s


@pytest.fixture
def store(tmp_path: Path):
    with HistoryStore.open(tmp_path / "h.db") as s:
        yield s


def _marker(n: int) -> bytes:
    return b"\xff\xd8" + f"THUMB-MARK-{n:04d}".encode() * 8


def _raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _stranger(store: HistoryStore, name: str | None, created_at: float = NOW - DAY) -> str:
    with store.engine.begin() as conn:
        key = conn.execute(insert(T.strangers).values(embedding_space="space-a", created_at=created_at, name=name)
                           .returning(T.strangers.c.id)).scalar_one()
    return retention.stranger_label(int(key))


def _rows(store: HistoryStore, table) -> list:
    with store.engine.connect() as conn:
        return conn.execute(select(table)).all()


def test_forget_deletes_every_row_of_the_person_and_nothing_else(any_store: HistoryStore, tmp_path: Path) -> None:
    store = any_store
    carol = _stranger(store, "alice")  # a stranger named as alice: her tracks are alice's
    other = _stranger(store, None)
    t = [track(1, thumbnail=_marker(1)), track(2, identity="bob", thumbnail=_marker(2)),
         track(3, identity=None, thumbnail=_marker(3)), track(4, identity=None, thumbnail=_marker(4)),
         track(5, thumbnail=_marker(5))]
    t[2].stranger_id, t[3].stranger_id = carol, other
    ids = store.write(t, [Decision("run-1", "cam1", 1, 1001.0, 1.0, 10, None, None, None),  # before it was decided
                          Decision("run-1", "cam1", 1, 1002.0, 2.0, 20, "alice", 0.8, 0.3),
                          Decision("run-1", "cam1", 2, 1002.0, 2.0, 20, "bob", 0.8, 0.3),
                          Decision("run-1", "cam1", 3, 1003.0, 3.0, 30, None, None, None),
                          Decision("run-1", "cam9", 77, 1004.0, 4.0, 40, "alice", 0.7, 0.4)])  # a track not kept
    erased = store.forget("alice")
    assert (erased.tracks, erased.decisions, erased.strangers) == (3, 4, 1)
    assert [r.track_id for r in store.tracks()] == [2, 4]
    assert sorted(r.id for r in _rows(store, T.track_means)) == [ids[1], ids[3]]
    assert [(r.track_id, r.identity) for r in _rows(store, T.decisions)] == [(2, "bob")]
    assert [retention.stranger_label(r.id) for r in _rows(store, T.strangers)] == [other]
    assert store.thumbnail(ids[1]) == _marker(2)
    assert store.forget("alice") == type(erased)(0, 0, 0)
    if store.dialect != "sqlite":
        return
    raw = _raw(tmp_path / "h.db")  # the bytes, not only the queries: secure_delete + an emptied WAL
    for n in (1, 3, 5):
        assert _marker(n) not in raw
    assert _marker(2) in raw and _marker(4) in raw
    for blob in (t[0].mean, t[0].best, t[4].mean):
        assert np.ascontiguousarray(blob, "<f4").tobytes() not in raw


def test_without_secure_delete_the_bytes_would_stay(tmp_path: Path) -> None:
    """What the test above guards against: a plain DELETE, where SQLite is built without SECURE_DELETE
    (SQLite's own default; Debian's build turns it on), leaves the thumbnail in the file."""
    path = tmp_path / "plain.db"
    with HistoryStore.open(path) as store:
        store.write_tracks([track(1, thumbnail=_marker(1)), track(2, identity="bob")])
    conn = sqlite3.connect(path)
    conn.execute("pragma secure_delete=off")
    conn.execute("delete from track_means")
    conn.execute("delete from tracks where identity = 'alice'")
    conn.commit()
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    assert _marker(1) in _raw(path)


def test_without_the_checkpoint_the_wal_would_keep_them(tmp_path: Path) -> None:
    """Secure delete zeroes the pages, but in WAL mode the zeroed pages go to the WAL: the database
    file keeps the old ones (or the WAL the frames the rows were written in) until a checkpoint, which
    is why forget checkpoints (TRUNCATE) at once."""
    path = tmp_path / "wal.db"
    with HistoryStore.open(path) as store:
        store.write_tracks([track(1, thumbnail=_marker(1)), track(2, identity="bob")])
    conn = sqlite3.connect(path)
    conn.execute("pragma secure_delete=on")
    conn.execute("delete from track_means")
    conn.execute("delete from tracks where identity = 'alice'")
    conn.commit()
    assert _marker(1) in _raw(path)
    conn.execute("pragma wal_checkpoint(truncate)")
    assert _marker(1) not in _raw(path)
    conn.close()


def test_prune_by_age_keeps_the_newer_rows(any_store: HistoryStore) -> None:
    store = any_store
    store.begin_run(RunRow("run-1", NOW - 30 * DAY, None, None, "live", "m"))
    old, new = NOW - 10 * DAY, NOW - 2 * DAY
    stale = _stranger(store, None, created_at=NOW - 10 * DAY)
    fresh = _stranger(store, None, created_at=NOW - 60)  # its first track may be on its way
    t = [track(1, start=old), track(2, start=new), track(3, identity=None, start=old)]
    t[2].stranger_id = stale
    store.write(t, [Decision("run-1", "cam1", 1, old + 1, None, None, "alice", 0.8, 0.3),
                    Decision("run-1", "cam1", 2, new + 1, None, None, "alice", 0.8, 0.3)])
    assert store.prune(keep_days=7, max_bytes=None, now=NOW) == 2
    assert [r.track_id for r in store.tracks()] == [2]
    assert [r.track_id for r in _rows(store, T.decisions)] == [2]
    assert [r.id for r in _rows(store, T.track_means)] == [store.tracks()[0].id]
    assert [retention.stranger_label(r.id) for r in _rows(store, T.strangers)] == [fresh]
    cache = search_cache.cache_dir(store.url)  # search's copy of the means beside a SQLite store
    if cache is not None:
        cache.mkdir()
        assert store.prune(keep_days=7, max_bytes=None, now=NOW) == 0 and cache.is_dir()  # nothing deleted
        store.write([track(9, start=old)])
        assert store.prune(keep_days=7, max_bytes=None, now=NOW) == 1 and not cache.exists()
    assert store.prune(keep_days=7, max_bytes=None, now=NOW) == 0
    assert store.prune(keep_days=None, max_bytes=None, now=NOW) == 0


def test_an_archive_ages_from_when_it_was_analysed_not_from_its_pts(any_store: HistoryStore) -> None:
    """A file with no known start has times that are its pts (1970 as dates): it is as old as its run."""
    store = any_store
    store.begin_run(RunRow("recent", NOW - DAY, NOW - DAY, None, "archive", "m"))
    store.begin_run(RunRow("older", NOW - 9 * DAY, NOW - 9 * DAY, None, "archive", "m"))
    a, b = track(1, start=3.0), track(2, start=5.0)
    b.run_id = "older"
    a.run_id = "recent"
    store.write([a, b], [Decision("recent", "cam1", 1, 4.0, 4.0, 4, "alice", 0.8, 0.3),
                         Decision("older", "cam1", 2, 6.0, 6.0, 6, "alice", 0.8, 0.3)])
    assert store.prune(keep_days=7, max_bytes=None, now=NOW) == 1
    assert [(r.run_id, r.track_id) for r in store.tracks()] == [("recent", 1)]
    assert [r.run_id for r in _rows(store, T.decisions)] == ["recent"]
    assert [r.id for r in store.runs()] == ["recent"]  # a finished run with nothing left goes too


@pytest.mark.slow
def test_a_size_cap_brings_the_file_under_it_and_the_file_shrinks(store: HistoryStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    batch = []
    for n in range(400):
        t = track(n, start=1000.0 + n)
        t.thumbnail = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()  # like a JPEG: incompressible
        batch.append(t)
    store.write(batch, [Decision("run-1", "cam1", n, 1000.0 + n, None, None, "alice", 0.8, 0.3) for n in range(400)])
    before = retention.file_bytes(store.engine)
    assert before > 2_500_000
    cap = 1_000_000
    deleted = store.prune(keep_days=None, max_bytes=cap, now=NOW)
    assert retention.used_bytes(store.engine) <= cap
    assert (tmp_path / "h.db").stat().st_size <= cap + 64 * 1024  # the file itself, not only its free list
    left = store.tracks()
    assert deleted == 400 - len(left) and 0 < len(left) < 400
    assert [r.track_id for r in left] == list(range(400 - len(left), 400))  # the newest stay
    assert {r.track_id for r in _rows(store, T.decisions)} == {r.track_id for r in left}
    assert len(_rows(store, T.track_means)) == len(left)
    assert store.prune(keep_days=None, max_bytes=cap, now=NOW) == 0


@pytest.mark.slow
def test_a_store_made_before_incremental_vacuum_is_rewritten_to_shrink(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with HistoryStore.open(path) as store:
        store.write_tracks([track(n, thumbnail=bytes(5000) + bytes([n % 256]) * 3000) for n in range(200)])
    conn = sqlite3.connect(path)  # as a file made before auto_vacuum was set
    conn.execute("pragma auto_vacuum=NONE")
    conn.execute("vacuum")
    conn.close()
    with HistoryStore.open(path) as store:
        assert sqlite3.connect(path).execute("pragma auto_vacuum").fetchone() == (0,)
        size = path.stat().st_size
        store.prune(keep_days=None, max_bytes=size // 3, now=NOW)
        assert path.stat().st_size <= size // 3 + 64 * 1024


def test_a_new_store_is_made_for_incremental_vacuum(tmp_path: Path) -> None:
    HistoryStore.open(tmp_path / "new.db").close()
    assert sqlite3.connect(tmp_path / "new.db").execute("pragma auto_vacuum").fetchone() == (2,)


def test_stranger_ids_read_back() -> None:
    assert retention.stranger_key("stranger-000123") == 123
    assert retention.stranger_key("stranger-1234567") == 1234567
    assert retention.stranger_key("alice") is None and retention.stranger_key(None) is None
    assert retention.stranger_label(7) == "stranger-000007"


@pytest.mark.slow
def test_a_size_cap_keeps_the_newest_under_it(any_store: HistoryStore) -> None:
    """PostgreSQL's files keep their size after DELETE and VACUUM (the space is reused): there the cap is
    on the live rows, estimated from the newest; on SQLite the same call measures pages."""
    store = any_store
    rng = np.random.default_rng(1)
    batch = []
    for n in range(300):
        t = track(n, start=1000.0 + n)
        t.thumbnail = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
        batch.append(t)
    store.write(batch)
    used = retention.used_bytes(store.engine)
    assert used > 300 * 6000
    deleted = store.prune(keep_days=None, max_bytes=used // 3, now=NOW)
    assert retention.used_bytes(store.engine) <= used // 3
    left = [r.track_id for r in store.tracks()]
    assert left == list(range(300 - len(left), 300)) and deleted == 300 - len(left)
    assert 60 <= len(left) <= 100  # about a third: the estimate is of rows like these
    assert len(_rows(store, T.track_means)) == len(left)


@pytest.mark.slow
def test_a_run_prunes_in_the_background_at_its_start_and_then_on_schedule(tmp_path: Path) -> None:
    import time as _time

    from stream.events.schema import Event
    from stream.history.config import HistoryConfig
    from stream.history.recorder import HistoryRecorder, TrackModel

    url = str(tmp_path / "h.db")
    now = _time.time()
    with HistoryStore.open(url) as store:
        store.begin_run(RunRow("before", now - 30 * DAY, now - 20 * DAY, None, "live", "m"))
        old = track(1, start=now - 10 * DAY)
        old.run_id = "before"
        store.write([old])
    config = HistoryConfig(url=url, keep_days=7, prune_every_s=1, commit_every_s=0.1)
    rec = HistoryRecorder(url, config, TrackModel("m", "space-a", 8), "run-now")
    try:
        _until(lambda: rec.pruner.pruned == 1)
        with HistoryStore.open(url) as store:
            assert store.count() == 0 and [r.id for r in store.runs()] == []
            later = track(2, start=now - 8 * DAY)  # written while the run goes: the next turn prunes it
            later.run_id = "before"
            store.write([later])
        rec.write(Event(type="identity", source="cam1", track_id=5, identity="alice", ts=now))
        _until(lambda: rec.pruner.pruned == 2 and rec.stats().delivered == 1)
    finally:
        rec.close()
    with HistoryStore.open(url) as store:
        assert store.count() == 0 and store.decisions("run-now", "cam1", 5)  # the run's own rows stay


@pytest.mark.slow
def test_a_prune_that_fails_is_logged_and_the_rows_still_arrive(tmp_path: Path, caplog) -> None:
    from stream.events.schema import Event
    from stream.history.config import HistoryConfig
    from stream.history.recorder import HistoryRecorder, TrackModel

    url = str(tmp_path / "h.db")

    class Refusing(HistoryStore):
        def prune(self, **kwargs):
            raise RuntimeError("database is locked")

    def opener(u: str) -> HistoryStore:
        opened = HistoryStore.open(u)
        return Refusing(opened.engine, opened.url)

    config = HistoryConfig(url=url, max_mb=1, commit_every_s=0.1)
    rec = HistoryRecorder(url, config, TrackModel("m", "space-a", 8), "run-1", store_factory=opener)
    try:
        rec.write(Event(type="identity", source="cam1", track_id=5, identity="alice", ts=1000.0))
        _until(lambda: rec.stats().delivered == 1)
    finally:
        rec.close()
    assert "cannot prune" in caplog.text and "database is locked" in caplog.text


def _until(check, timeout: float = 15.0) -> None:
    import time as _time

    end = _time.monotonic() + timeout
    while not check():
        assert _time.monotonic() < end, "timed out"
        _time.sleep(0.05)


@pytest.mark.slow
def test_history_prune_by_hand(cli, tmp_path: Path) -> None:
    from tests.conftest import assert_one_line_error

    db = tmp_path / "h.db"
    with HistoryStore.open(db) as store:
        import time as _time

        now = _time.time()
        store.begin_run(RunRow("run-1", now - 30 * DAY, None, None, "live", "m"))
        store.write([track(1, start=now - 10 * DAY), track(2, start=now - DAY), track(3, start=now - 9 * DAY)])
    out = cli("history", "prune", "--history", db, "--keep-days", "7", check=True).stdout.strip()
    assert out.startswith(f"{db}: deleted 2 of 3 track(s)") and "MB on disk" in out, out
    with HistoryStore.open(db) as store:
        assert [r.track_id for r in store.tracks()] == [2]
    config = tmp_path / "c.yaml"
    config.write_text(f"history:\n  url: {db}\n  keep_days: 0.5\n")
    assert "deleted 1 of 1 track(s)" in cli("history", "prune", "--config", config, check=True).stdout
    assert_one_line_error(cli("history", "prune", "--history", db), "nothing to prune by", "--keep-days")
    assert_one_line_error(cli("history", "prune", "--history", db, "--max-mb", "0"), "--max-mb must be more than 0")
    assert_one_line_error(cli("history", "prune", "--history", tmp_path / "none.db", "--keep-days", "1"),
                          "none.db", "no such history store")
    config.write_text(f"history:\n  url: {db}\n  keep_days: -1\n")
    assert_one_line_error(cli("history", "prune", "--config", config), "keep_days")


@pytest.mark.slow
def test_a_real_run_prunes_what_is_older_than_keep_days(cli, tmp_path: Path) -> None:
    """history.keep_days from a config reaches the run's recorder: an old live track goes, the clip's stay."""
    import time as _time

    from tests.conftest import media_path

    db, config = tmp_path / "h.db", tmp_path / "c.yaml"
    now = _time.time()
    with HistoryStore.open(db) as store:
        store.begin_run(RunRow("last-month", now - 30 * DAY, now - 29 * DAY, None, "live", "m"))
        old = track(1, start=now - 29.5 * DAY)
        old.run_id = "last-month"
        store.write([old], [Decision("last-month", "cam1", 1, now - 29.5 * DAY, None, None, "alice", 0.8, 0.3)])
    config.write_text("history:\n  keep_days: 7\n")
    proc = cli("-v", "run", "--config", config, "--source", media_path("short_hamilton_clip.mp4"), "--history", db,
               "--no-progress", check=True)
    assert "history: pruned 1 track(s)" in proc.stderr, proc.stderr
    with HistoryStore.open(db) as store:
        rows = store.tracks()
        assert rows and {r.source for r in rows} == {"short_hamilton_clip"}
        assert "last-month" not in {r.id for r in store.runs()}
        assert not store.decisions("last-month", "cam1", 1)
