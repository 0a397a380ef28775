"""Erasing a person and keeping the store within its age and size limits (``history.keep_days``, ``max_mb``).

Both delete rows and then make the bytes go: on SQLite the erase connection runs with
``secure_delete`` (freed pages are zeroed, so a deleted thumbnail or name is not left readable in
the file) and the WAL is checkpointed and truncated (it held copies of the pages); a size cap then
shrinks the file (incremental vacuum where the file was made with it, else VACUUM). On PostgreSQL
deleted rows stay in the table files until VACUUM, which runs after each erase, outside a
transaction (docs/privacy.md says what that does and does not reach).

The functions take the store's engine; ``HistoryStore.forget`` and ``HistoryStore.prune`` are
their public face.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select

from stream.history import tables as T

log = logging.getLogger(__name__)

#: Below this a time is a file's pts (the file's start was not known), not a date: ten years of video.
PTS_ONLY = 10 * 365 * 86400
#: A stranger row with no tracks is kept this long after it was made: its first track may be on its way.
STRANGER_GRACE_S = 3600.0
#: Tracks deleted per statement by the size cap (SQLite's bound-parameter limit is far above it).
CAP_CHUNK = 500
_TABLES = ("decisions", "track_means", "tracks", "strangers", "runs")


@dataclass
class Erased:
    tracks: int = 0
    decisions: int = 0
    strangers: int = 0
    scrubbed: bool = True  # the freed bytes were overwritten / vacuumed (see ``scrub``)


def stranger_key(stranger_id: str | None) -> int | None:
    """``stranger-000123`` -> 123 (the ``strangers`` row id); anything else -> None."""
    if not stranger_id or not stranger_id.startswith("stranger-"):
        return None
    digits = stranger_id[len("stranger-"):]
    return int(digits) if digits.isdigit() else None


def stranger_label(key: int) -> str:
    return f"stranger-{key:06d}"


# -- connections that leave no bytes behind ----------------------------------------------------------
@contextmanager
def erasing(engine: Any) -> Iterator[Any]:
    """One transaction whose deletes overwrite what they free (SQLite); ``scrub`` after it empties the WAL."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        # Debian's SQLite zeroes freed bytes by default, others (SQLite's own default) do not: asked for
        was = _pragma(conn, "secure_delete")[0][0] if sqlite else None
        if sqlite:
            _pragma(conn, "secure_delete=ON")
        try:
            with conn.begin():
                yield conn
        finally:
            if sqlite:
                _pragma(conn, f"secure_delete={int(was)}")  # the pooled connection goes back as it was


def _pragma(conn: Any, statement: str) -> list[tuple]:
    """A PRAGMA on the driver's connection, outside SQLAlchemy's transaction bookkeeping."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(f"PRAGMA {statement}")
        return cursor.fetchall()
    finally:
        cursor.close()


def scrub(engine: Any) -> bool:
    """Make freed bytes unreadable where the database lets us (see the module's doc); False when it could
    not (said in a warning): the rows are deleted either way."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            # TRUNCATE: the WAL's frames (copies of the pages as they were) are written back and the file
            # cut to zero; busy (a reader holds an old snapshot) leaves it for the next checkpoint.
            ((busy, _, _),) = _pragma(conn, "wal_checkpoint(TRUNCATE)")
        if busy:
            log.warning("history: a reader kept the WAL from being emptied; erased rows may linger in %s-wal "
                        "until the next checkpoint", engine.url.database)
        return not busy
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _TABLES:  # VACUUM refuses to run inside a transaction
                conn.exec_driver_sql(f"VACUUM {table}")
    except SQLAlchemyError as exc:  # not the tables' owner, say: autovacuum gets there in its own time
        log.warning("history: VACUUM failed (%s); deleted rows stay in the table files until autovacuum",
                    str(getattr(exc, "orig", exc)).strip().splitlines()[0])
        return False
    return True


# -- forget --------------------------------------------------------------------------------------
def forget(engine: Any, name: str) -> Erased:
    """Delete every row about ``name``: see ``HistoryStore.forget``."""
    t, d, s = T.tracks.c, T.decisions.c, T.strangers.c
    with erasing(engine) as conn:
        keys = [int(r[0]) for r in conn.execute(select(s.id).where(s.name == name))]
        labels = [stranger_label(k) for k in keys]
        theirs = t.identity == name
        if labels:
            theirs = or_(theirs, t.stranger_id.in_(labels))
        ids = select(t.id).where(theirs)
        # a decision about one of their tracks (the "unknown" ones before it was decided too) or naming them
        of_track = exists().where(and_(t.run_id == d.run_id, t.source == d.source, t.track_id == d.track_id,
                                       theirs))
        decisions = conn.execute(delete(T.decisions).where(or_(d.identity == name, of_track))).rowcount
        conn.execute(delete(T.track_means).where(T.track_means.c.id.in_(ids)))
        tracks = conn.execute(delete(T.tracks).where(theirs)).rowcount
        strangers = conn.execute(delete(T.strangers).where(s.name == name)).rowcount if keys else 0
    drop_caches(engine)
    return Erased(int(tracks), int(decisions), int(strangers), scrub(engine))


def drop_caches(engine: Any) -> None:
    """The copies of the rows kept beside the store (search's cache of the means): deleted with the rows."""
    from stream.history import search_cache

    search_cache.discard(str(engine.url))


# -- retention -----------------------------------------------------------------------------------
def prune(engine: Any, *, keep_days: float | None, max_bytes: int | None, now: float | None = None) -> int:
    """Delete tracks older than ``keep_days``, then the oldest until the store is under ``max_bytes``;
    their decisions and means go with them, and strangers left with no track. The tracks deleted."""
    now = time.time() if now is None else float(now)
    deleted = 0
    if keep_days is not None:
        deleted += _prune_age(engine, now - float(keep_days) * 86400.0)
    if max_bytes is not None:
        deleted += _prune_size(engine, int(max_bytes))
    if deleted:
        drop_caches(engine)
        _prune_strangers(engine, now)
        shrink(engine)
    return deleted


def _older(table: Any, time_column: Any, cutoff: float) -> Any:
    """Rows recorded before ``cutoff``. A live row's time is when it was seen; an archive's is a position
    in a file (or the file's start plus it), so its age is its run's: when the file was analysed."""
    r = T.runs.c
    live = and_(time_column < cutoff, time_column >= PTS_ONLY,
                ~table.c.run_id.in_(select(r.id).where(r.kind == "archive")))
    archive = table.c.run_id.in_(select(r.id).where(r.kind == "archive", r.started_at < cutoff))
    return or_(live, archive)


def _prune_age(engine: Any, cutoff: float) -> int:
    t, d, r = T.tracks.c, T.decisions.c, T.runs.c
    old = _older(T.tracks, t.ended_at, cutoff)
    with erasing(engine) as conn:
        conn.execute(delete(T.decisions).where(_older(T.decisions, d.ts, cutoff)))
        conn.execute(delete(T.track_means).where(T.track_means.c.id.in_(select(t.id).where(old))))
        count = conn.execute(delete(T.tracks).where(old)).rowcount
        # a finished run with nothing left of it: its row says only that it ran
        conn.execute(delete(T.runs).where(r.ended_at.is_not(None), r.ended_at < cutoff,
                                          ~exists().where(t.run_id == r.id), ~exists().where(d.run_id == r.id)))
    scrub(engine)
    return int(count)


def _prune_size(engine: Any, max_bytes: int) -> int:
    """Oldest tracks first (by row id: the order they were written) until the data is under the cap."""
    deleted = 0
    for _ in range(64):  # each round deletes at least a chunk: bounded however the estimate errs
        used, tracks = used_bytes(engine), _count(engine)
        if used <= max_bytes or not tracks:
            break
        per_track = used / tracks
        # a little past the estimate: one round mostly, a second for what the estimate missed
        n = max(1, min(tracks, int((used - max_bytes) / per_track * 1.02) + 1))
        deleted += _delete_oldest(engine, n)
        shrink(engine)
        if engine.dialect.name != "sqlite":
            break  # the estimate is of live rows already: one round is what it says
    return deleted


def _delete_oldest(engine: Any, n: int) -> int:
    t, d = T.tracks.c, T.decisions.c
    count = 0
    while count < n:
        with erasing(engine) as conn:
            ids = [int(r[0]) for r in conn.execute(select(t.id).order_by(t.id).limit(min(CAP_CHUNK, n - count)))]
            if not ids:
                break
            chosen = t.id.in_(ids)
            conn.execute(delete(T.decisions).where(exists().where(
                and_(t.run_id == d.run_id, t.source == d.source, t.track_id == d.track_id, chosen))))
            conn.execute(delete(T.track_means).where(T.track_means.c.id.in_(ids)))
            count += int(conn.execute(delete(T.tracks).where(chosen)).rowcount)
        if engine.dialect.name == "sqlite":
            scrub(engine)  # per chunk: the WAL stays small
    if engine.dialect.name != "sqlite":
        scrub(engine)  # VACUUM once, not per chunk
    return count


def _prune_strangers(engine: Any, now: float) -> int:
    t, s = T.tracks.c, T.strangers.c
    with engine.connect() as conn:
        used = {stranger_key(r[0]) for r in conn.execute(select(t.stranger_id).where(t.stranger_id.is_not(None))
                                                           .distinct())}
        keys = [int(r[0]) for r in conn.execute(select(s.id).where(s.created_at < now - STRANGER_GRACE_S))]
    gone = [k for k in keys if k not in used]
    if gone:
        with erasing(engine) as conn:
            for start in range(0, len(gone), CAP_CHUNK):
                conn.execute(delete(T.strangers).where(s.id.in_(gone[start:start + CAP_CHUNK])))
        scrub(engine)
    return len(gone)


def _count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(T.tracks)).scalar_one())


# -- size ----------------------------------------------------------------------------------------
def used_bytes(engine: Any) -> int:
    """What the store's data takes. SQLite: the pages in use (the file less its free pages). PostgreSQL:
    its files do not shrink without VACUUM FULL, so the live rows' size, estimated from the newest."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            (pages,), (free,), (size,) = (_pragma(conn, p)[0] for p in ("page_count", "freelist_count",
                                                                          "page_size"))
            return int((pages - free) * size)
        total = 0
        for table in (T.tracks, T.track_means, T.decisions):
            count = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            if not count:
                continue
            mean = conn.exec_driver_sql(f"SELECT avg(pg_column_size(s.*)) FROM (SELECT * FROM {table.name} "
                                        "ORDER BY id DESC LIMIT 1000) AS s").scalar_one()
            total += int(count * float(mean or 0.0))
        return total


def file_bytes(engine: Any) -> int:
    """The store's size on disk: SQLite's file (page_count * page_size), PostgreSQL's tables with their
    indexes and TOAST."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            (pages,), (size,) = (_pragma(conn, p)[0] for p in ("page_count", "page_size"))
            return int(pages * size)
        return int(sum(conn.exec_driver_sql(f"SELECT pg_total_relation_size('{t}')").scalar_one()
                       for t in _TABLES))


def shrink(engine: Any) -> None:
    """Give freed pages back to the file system (SQLite); PostgreSQL's VACUUM already ran in ``scrub``."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        ((mode,),), ((free,),) = _pragma(conn, "auto_vacuum"), _pragma(conn, "freelist_count")
        if not free:
            return
        # incremental: the free pages move to the end and the file is cut, in place; a file made before
        # auto_vacuum was set is rewritten whole (VACUUM: needs its size free on the disk, once)
        if mode == 2:  # executescript steps it to the end: Python's execute steps once, freeing one page
            conn.connection.driver_connection.executescript("PRAGMA incremental_vacuum;")
        else:
            conn.connection.driver_connection.execute("VACUUM")
    scrub(engine)


# -- in the background -----------------------------------------------------------------------------
class Pruner:
    """``history.keep_days`` / ``max_mb`` applied by a run's writer thread: once at its start, then every
    ``prune_every_s``, through a store of its own (the writer's stays as it is). A failure is logged and
    tried again at the next turn: retention is never a reason to lose the rows being written."""

    def __init__(self, keep_days: float | None, max_mb: float | None, every_s: float) -> None:
        self.keep_days = keep_days
        self.max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
        self.every_s = every_s
        self.next_at = 0.0  # monotonic: due at once
        self.pruned = 0

    @classmethod
    def from_config(cls, config: Any) -> Pruner:
        return cls(config.keep_days, config.max_mb, config.prune_every_s)

    @property
    def enabled(self) -> bool:
        return self.keep_days is not None or self.max_bytes is not None

    def due(self) -> bool:
        return self.enabled and time.monotonic() >= self.next_at

    def run(self, open_store: Any, url: str, shown: str) -> int:
        self.next_at = time.monotonic() + self.every_s
        try:
            store = open_store(url)
            try:
                deleted = int(store.prune(keep_days=self.keep_days, max_bytes=self.max_bytes))
            finally:
                store.close()
        except Exception as exc:  # the store is away or busy: the next turn tries again
            log.warning("history: cannot prune %s (%s); trying again in %.0f s", shown,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self.every_s)
            return 0
        self.pruned += deleted
        if deleted:
            log.info("history: pruned %d track(s) from %s (keep_days %s, max_mb %s)", deleted, shown,
                     self.keep_days, None if self.max_bytes is None else self.max_bytes / 1024 / 1024)
        return deleted
