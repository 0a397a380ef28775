"""A SQLAlchemy engine for a history URL: SQLite in WAL mode, or PostgreSQL through psycopg 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream.errors import FacestreamError


def make_engine(url: str, shown: str) -> Any:
    """``shown`` is what the user gave (for errors). Raises FacestreamError when it cannot be used."""
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite:"):
        path = Path(url[len("sqlite:///"):])
        if path.parent and not path.parent.is_dir():
            raise FacestreamError(f"{shown}: no such folder {path.parent}")
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # First, as it only takes on a new file: retention then shrinks the file in place
            # (PRAGMA incremental_vacuum) instead of rewriting it whole (stream/history/retention.py).
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            # WAL: readers (history, search, the web page) never block the run's writer. NORMAL:
            # a commit survives the process being killed (only a power cut may lose the last ones).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        return engine
    try:
        import psycopg  # noqa: F401 - only to say what is missing
    except ImportError:
        raise FacestreamError(f"{shown}: PostgreSQL needs psycopg 3 (pip install 'facestream[history-pg]')") from None
    return create_engine(url, pool_pre_ping=True)
