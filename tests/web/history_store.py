"""A history store filled by a real run of the Hamilton clip (once per test session), and a real uvicorn
server showing it: what the History API and page tests read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream.history.store import HistoryStore, TrackRow
from stream.web.app import WebContext, create_app
from stream.web.history import HistoryView
from stream.web.server import WebServer
from tests.conftest import media_path

LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"
CLIP = "short_hamilton_clip"
#: the clip's wall-clock start (run --start-time): its tracks lie on this day, 09:00:00-09:00:12 UTC
START = "2026-05-01T09:00:00+00:00"
START_TS = 1777626000.0


@dataclass
class Recorded:
    db: Path
    rows: list[TrackRow]

    def of(self, who: str) -> list[TrackRow]:
        return [r for r in self.rows if r.identity == who]


@pytest.fixture(scope="session")
def recorded(cli, tmp_path_factory) -> Recorded:
    out = tmp_path_factory.mktemp("history-web")
    gallery, db = out / "g.npz", out / "h.db"
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path("lin-manuel-miranda.png"), check=True)
    cli("enroll", "--gallery", gallery, "--name", ALEX, media_path("alex-lacamoire.png"), check=True)
    cli("run", "--source", media_path(f"{CLIP}.mp4"), "--gallery", gallery, "--history", db, "--start-time", START,
        "--no-progress", check=True)
    with HistoryStore.open(db, create=False) as store:
        rows = store.tracks()
    assert {r.identity for r in rows if r.identity} == {LIN, ALEX}
    return Recorded(db, rows)


def copy_store(src: Path, dst: Path) -> Path:
    """A consistent copy of a SQLite store (the backup API: the WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def serve_history(url: str | Path, model_name: str, token: str | None = None,
                  refresh_s: float = 0.2) -> Iterator[tuple[WebServer, HistoryView]]:
    history = HistoryView(str(url), model_name, refresh_s=refresh_s)
    server = WebServer(create_app(WebContext(history=history, token=token, title="facestream history")),
                       "127.0.0.1:0", token).start()
    try:
        yield server, history
    finally:
        server.stop()
        history.close()
