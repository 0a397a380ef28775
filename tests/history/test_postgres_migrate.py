"""Runs that open one new PostgreSQL history database at the same moment (the shards of a site starting
together) all get the schema: its creation is taken one at a time, not raced (it once failed a shard
with a duplicate-key error from PostgreSQL's catalogue)."""

from __future__ import annotations

import threading

import pytest

from stream.history.store import HistoryStore
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # starts a server


def test_runs_opening_a_new_database_together_all_get_the_schema():
    with postgres_server() as pg:
        start, errors, opened = threading.Barrier(4), [], []

        def open_store() -> None:
            start.wait()
            try:
                with HistoryStore.open(pg.url) as store:
                    opened.append(len(store.tracks()))
            except Exception as exc:  # every failure is the finding
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "opens still waiting after 120 s (the creations deadlocked)"
        assert not errors, errors
        assert opened == [0, 0, 0, 0]
