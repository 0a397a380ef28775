"""`facestream search` on a history store on a real PostgreSQL server (127.0.0.1; skipped where absent)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import media_path
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # starts a server and a run


@pytest.mark.parametrize("photo, person, other", [("lin-manuel-miranda.png", "lin-manuel-miranda", "alex-lacamoire")])
def test_search_on_postgresql(cli, default_model, tmp_path, photo, person, other):
    from stream.history.store import HistoryStore
    from tests.history.search_set import labelled_tracks, write_to_store

    unknowns, events = tmp_path / "unknowns", tmp_path / "events.jsonl"
    cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--save-unknowns", unknowns, "--events-out",
        events, "--no-progress", check=True)
    with postgres_server() as pg:
        with HistoryStore.open(pg.url) as store:
            by_id = write_to_store(store, labelled_tracks(unknowns, events), default_model)
        proc = cli("search", media_path(photo), "--url", pg.url, "--json", check=True)
    found = [by_id[json.loads(line)["id"]].label for line in proc.stdout.splitlines()]
    assert found.count(person) == sum(t.label == person for t in by_id.values()) >= 2, found
    assert other not in found, found
