"""`facestream forget` leaves no trace: a person enrolled from real photos (appended segment, cached
search index, a photo kept beside the gallery, a named stranger's crops) and seen in a real run of the
Hamilton clip with --history is forgotten; read back from the store, its file's raw bytes and the
folders, nothing of them is left, and the other person's rows are untouched. On SQLite and on a real
PostgreSQL server."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from stream.history import tables as T
from stream.history.store import HistoryStore
from stream.recognize.forget import photos_dir
from stream.recognize.gallery import Gallery, list_segments, segment_dir
from stream.recognize.gallery_index import index_dir
from tests.conftest import assert_one_line_error, media_path
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # real runs of the clip, a server

LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"


@dataclass
class Stored:
    root: Path
    gallery: Path
    unknowns: Path
    history: str
    alex_keys: set[tuple[str, str, int]]  # (run, source, track) of Alex's tracks
    alex_blobs: list[bytes]  # thumbnails and embeddings of Alex, as stored
    lin_tracks: int
    lin_decisions: int


def _store_person_everywhere(cli, root: Path, history: str) -> Stored:
    """Alex as the web page and a run would leave him: his photo kept beside the gallery, enrolled as an
    appended segment, a stranger's crops named as him, a cached faiss index, and a run's tracks."""
    gallery, unknowns = root / "g.npz", root / "unknowns"
    photo = photos_dir(gallery) / ALEX / "0001.png"
    photo.parent.mkdir(parents=True)
    shutil.copy(media_path("alex-lacamoire.png"), photo)
    named = unknowns / ".named" / ALEX / "short_hamilton_clip-7"
    named.mkdir(parents=True)
    shutil.copy(media_path("alex-lacamoire.png"), named / "crop-0.png")
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path("lin-manuel-miranda.png"), check=True)
    cli("enroll", "--gallery", gallery, "--name", ALEX, photo, check=True)
    assert list_segments(gallery), "the second enroll is appended as a segment"
    config = root / "faiss.yaml"
    config.write_text("gallery_search:\n  index: faiss\n")  # so the run caches an index beside the gallery
    cli("run", "--config", config, "--source", media_path("short_hamilton_clip.mp4"), "--gallery", gallery,
        "--history", history, "--no-progress", check=True)
    assert list(index_dir(gallery).glob("*.faiss")), "the run cached its gallery index"
    where = "--url" if "://" in history else "--history"
    cli("search", media_path("alex-lacamoire.png"), where, history, check=True)  # caches the means (SQLite)
    with HistoryStore.open(history, create=False) as store:
        alex, lin = store.tracks(identity=ALEX), store.tracks(identity=LIN)
        assert alex and lin
        blobs = []
        for row in alex:
            blobs.append(store.thumbnail(row.id))
            mean, best = store.embeddings(row.id)
            blobs += [np.ascontiguousarray(mean, "<f4").tobytes(), np.ascontiguousarray(best, "<f4").tobytes()]
        keys = {(r.run_id, r.source, r.track_id) for r in alex}
        lin_decisions = sum(len(store.decisions(r.run_id, r.source, r.track_id)) for r in lin)
        assert sum(len(store.decisions(*k)) for k in keys)
    return Stored(root, gallery, unknowns, history, keys, [b for b in blobs if b], len(lin), lin_decisions)


def _forget_and_read_back(cli, s: Stored) -> list[str]:
    out = cli("forget", ALEX, "--gallery", s.gallery, "--unknowns", s.unknowns, "--history", s.history,
              check=True).stdout.splitlines()
    with HistoryStore.open(s.history, create=False) as store, store.engine.connect() as conn:
        tracks = conn.execute(select(T.tracks)).all()
        decisions = conn.execute(select(T.decisions)).all()
        means = {r.id for r in conn.execute(select(T.track_means))}
        assert tracks and ALEX not in {r.identity for r in tracks}
        assert not [d for d in decisions if d.identity == ALEX or (d.run_id, d.source, d.track_id) in s.alex_keys]
        assert means == {r.id for r in tracks}  # no embedding left without its track
        assert len(store.tracks(identity=LIN)) == s.lin_tracks  # the other person untouched
        assert sum(len(store.decisions(r.run_id, r.source, r.track_id))
                   for r in store.tracks(identity=LIN)) == s.lin_decisions
        assert not conn.execute(select(T.strangers).where(T.strangers.c.name == ALEX)).all()
    # the folders: gallery, its segments and cached index, the photos kept, the named stranger's crops
    assert Gallery.load(s.gallery).identities() == [LIN]
    raw = s.gallery.read_bytes()
    assert ALEX.encode() not in raw and ALEX.encode("utf-32-le") not in raw and LIN.encode("utf-32-le") in raw
    assert not list_segments(s.gallery)
    assert not list(index_dir(s.gallery).glob("*.faiss"))
    assert not (photos_dir(s.gallery) / ALEX).exists()
    assert not (s.unknowns / ".named" / ALEX).exists()
    left = [p for p in s.root.rglob("*") if ALEX in str(p)]
    assert not left, left
    return out


def test_forget_leaves_no_trace_in_sqlite(cli, tmp_path) -> None:
    db = tmp_path / "h.db"
    stored = _store_person_everywhere(cli, tmp_path, str(db))
    out = _forget_and_read_back(cli, stored)
    segments, index = segment_dir(stored.gallery), index_dir(stored.gallery)
    assert out[0] == f"{stored.gallery}: removed 1 embedding(s) of {ALEX}; rewritten without them"
    assert out[1].startswith(f"{segments}: deleted 1 appended segment(s)")
    assert out[2] == f"{index}: deleted 1 cached search index file(s)"
    assert out[3] == f"{photos_dir(stored.gallery) / ALEX}: deleted 1 photo(s)"
    assert out[4] == f"{stored.unknowns / '.named' / ALEX}: deleted 1 named stranger folder(s)"
    assert out[5].startswith(f"{db}: deleted {len(stored.alex_keys)} track(s) with their thumbnails and embeddings")
    assert "secure_delete" in out[5]
    cache = Path(f"{db}.search")
    assert out[6].startswith(f"{cache}: deleted the search cache") and len(out) == 7
    assert not cache.exists()
    # the bytes of the file and its WAL: not only unlisted, overwritten
    raw = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert LIN.encode() in raw  # the search below would find a name that is there
    assert ALEX.encode() not in raw
    missed = [i for i, blob in enumerate(stored.alex_blobs) if blob in raw]
    assert not missed, f"{len(missed)} of Alex's thumbnails/embeddings still readable in the file"
    # gone everywhere: a second forget finds no one, one line
    assert_one_line_error(cli("forget", ALEX, "--gallery", stored.gallery, "--history", db),
                          ALEX, "no one of that name", "nothing deleted")


def test_forget_leaves_no_trace_in_postgresql(cli, tmp_path) -> None:
    with postgres_server() as pg:
        stored = _store_person_everywhere(cli, tmp_path, pg.url)
        out = _forget_and_read_back(cli, stored)
        assert out[-1].startswith(f"{pg.url}: deleted {len(stored.alex_keys)} track(s)")
        assert out[-1].endswith("VACUUM run on its tables")


def test_forget_errors_are_one_line(cli, tmp_path) -> None:
    db = tmp_path / "h.db"
    HistoryStore.open(db).close()
    assert_one_line_error(cli("forget", ALEX), "--gallery FILE and/or --history")
    assert_one_line_error(cli("forget", "../x", "--history", db), "path separator")
    assert_one_line_error(cli("forget", ALEX, "--gallery", tmp_path / "none.npz"), "none.npz", "gallery not found")
    assert_one_line_error(cli("forget", ALEX, "--history", tmp_path / "none.db"), "none.db", "no such history store")
    assert_one_line_error(cli("forget", ALEX, "--history", db), ALEX, "no one of that name", "nothing deleted")
    config = tmp_path / "c.yaml"
    config.write_text("history:\n  keep_days: 7\n")
    assert_one_line_error(cli("forget", ALEX, "--config", config), "c.yaml", "neither gallery nor history.url")


def test_the_pages_delete_button_forgets_the_history_too(default_model, tmp_path) -> None:
    """DELETE /api/gallery/<name> on a real uvicorn server whose view has a history store."""
    import http.client
    import json

    from stream.web.app import WebContext, create_app
    from stream.web.history import HistoryView
    from stream.web.server import WebServer
    from tests.history.test_erase import _stored

    gallery, db = _stored(tmp_path)
    history = HistoryView(str(db), default_model.name)
    server = WebServer(create_app(WebContext(gallery=gallery, history=history)), "127.0.0.1:0", None).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("DELETE", "/api/gallery/alice")
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
    finally:
        server.stop()
        history.close()
    assert response.status == 200, body
    assert body["message"] == ("removed alice (2 embedding(s)); deleted 1 photo(s) and 0 named stranger folder(s); "
                               "deleted 2 track(s) and 1 decision(s) from the history")
    with HistoryStore.open(db) as store:
        assert [r.identity for r in store.tracks()] == ["bob"]
        assert not store.decisions("run-1", "cam1", 1)
    assert Gallery.load(gallery).identities() == ["bob"]
