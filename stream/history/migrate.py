"""Bring a history database to the current schema with Alembic (stream/history/migrations).

Run at every open: a new file gets every migration, an older one the ones it lacks, a current one
costs one read of ``alembic_version``. A database newer than this code is refused, not guessed at.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream.errors import FacestreamError
from stream.locking import exclusive_lock

MIGRATIONS = Path(__file__).with_name("migrations")
#: PostgreSQL advisory lock key held while migrating (any constant; "fshist" in ASCII)
MIGRATION_LOCK = 0x667368697374


def _config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config(None)).get_current_head())


def current(engine: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Any, shown: str, create: bool = True) -> None:
    """To the head revision; with ``create`` False a database without the history schema is refused."""
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    try:
        with _one_at_a_time(engine):
            _upgrade(engine, shown, create)
    except FacestreamError:
        raise
    except OperationalError as exc:
        raise FacestreamError(f"{shown}: cannot open the history store ({_reason(exc)})") from None
    except SQLAlchemyError as exc:
        raise FacestreamError(f"{shown}: cannot open the history store ({_reason(exc)})") from None


def _upgrade(engine: Any, shown: str, create: bool) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    have = current(engine)
    if have is None and not create:
        raise FacestreamError(f"{shown}: not a history store (no history schema in it)")
    script = ScriptDirectory.from_config(_config(None))
    if have is not None and have not in {rev.revision for rev in script.walk_revisions()}:
        raise FacestreamError(f"{shown}: history schema {have} is newer than this facestream knows")
    if have == script.get_current_head():
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Shards of a site (or runs) starting together on a new database would each create the
            # tables and collide: one at a time, each seeing what the one before it committed.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        command.upgrade(_config(conn), "head")


@contextlib.contextmanager
def _one_at_a_time(engine: Any) -> Iterator[None]:
    """Two runs opening one new SQLite file at once would both create the tables ("table runs already
    exists"; measured: 4 of 5 tries with 4 processes). An flock on the database file itself makes the
    second wait and then find the schema made: the kernel drops it if the holder dies, and SQLite's own
    locks are POSIX record locks, which flock does not touch. PostgreSQL takes an advisory lock in the
    transaction instead (below)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    path = Path(database) if database and database != ":memory:" else None
    if path is None or not os.access(path if path.exists() else path.parent, os.W_OK):
        yield  # in memory, or read-only: whoever reads it creates no tables, so there is nothing to order
        return
    with exclusive_lock(path):
        yield


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__
