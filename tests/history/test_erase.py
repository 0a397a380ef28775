"""Forgetting a person in one call (stream/history/erase.py), as `facestream forget` and the web page's
button do: the gallery side and the history side, one line per place, and what a name found nowhere
does. Real files (a gallery, a SQLite store); the end-to-end version with a real run is test_forget.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.history.erase import forget_everywhere
from stream.history.store import Decision, HistoryStore
from stream.recognize.forget import photos_dir
from stream.recognize.gallery import Gallery
from tests.history.test_store import track


def _stored(tmp_path: Path) -> tuple[Path, Path]:
    gallery, db = tmp_path / "g.npz", tmp_path / "h.db"
    photo = photos_dir(gallery) / "alice" / "0001.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"jpg")
    g = Gallery("m", "space-a", "euclidean", 8)
    g.add("alice", np.full((2, 8), 0.1, np.float32), [str(photo), ""])
    g.add("bob", np.full((1, 8), 0.2, np.float32), [""])
    g.save(gallery)
    with HistoryStore.open(db) as store:
        store.write([track(1), track(2, identity="bob"), track(3)],
                    [Decision("run-1", "cam1", 1, 1001.0, 1.0, 10, "alice", 0.8, 0.3)])
    return gallery, db


@pytest.mark.slow  # > 0.5 s here (a gallery rewrite, secure delete, checkpoint)
def test_forget_everywhere_reports_each_place(tmp_path: Path) -> None:
    gallery, db = _stored(tmp_path)
    erasure = forget_everywhere("alice", gallery=gallery, history=db)
    assert erasure.gallery.embeddings == 2 and erasure.gallery.photos == 1
    assert (erasure.history.tracks, erasure.history.decisions, erasure.history.strangers) == (2, 1, 0)
    assert erasure.lines[0] == f"{gallery}: removed 2 embedding(s) of alice; rewritten without them"
    assert erasure.lines[-1].startswith(f"{db}: deleted 2 track(s) with their thumbnails and embeddings, 1 decision(s)")
    assert len(erasure.lines) == 6
    assert Gallery.load(gallery).identities() == ["bob"]
    with HistoryStore.open(db) as store:
        assert [r.identity for r in store.tracks()] == ["bob"]


@pytest.mark.slow  # > 0.5 s here (a gallery rewrite, secure delete, checkpoint)
def test_a_person_only_in_the_history_is_forgotten_there(tmp_path: Path) -> None:
    gallery, db = _stored(tmp_path)
    with HistoryStore.open(db) as store:
        store.write([track(4, identity="carol")])
    erasure = forget_everywhere("carol", gallery=gallery, history=db)
    assert erasure.gallery.embeddings == 0 and erasure.history.tracks == 1
    assert Gallery.load(gallery).identities() == ["alice", "bob"]  # untouched, not even rewritten


def test_a_name_found_nowhere_changes_nothing(tmp_path: Path) -> None:
    gallery, db = _stored(tmp_path)
    before = gallery.stat().st_mtime_ns
    with pytest.raises(FacestreamError, match="dave: no one of that name in .*g.npz or .*h.db; nothing deleted"):
        forget_everywhere("dave", gallery=gallery, history=db)
    assert gallery.stat().st_mtime_ns == before
    with pytest.raises(FacestreamError, match="say where"):
        forget_everywhere("alice")


def test_an_unusable_store_is_refused_before_the_gallery_changes(tmp_path: Path) -> None:
    gallery, _ = _stored(tmp_path)
    with pytest.raises(FacestreamError, match="no such history store"):
        forget_everywhere("alice", gallery=gallery, history=tmp_path / "none.db")
    assert Gallery.load(gallery).identities() == ["alice", "bob"]


@pytest.mark.slow  # > 0.5 s here (a gallery rewrite, secure delete, checkpoint)
def test_the_web_pages_forget_reaches_the_history(tmp_path: Path) -> None:
    from stream.web.people import remove_person

    gallery, db = _stored(tmp_path)
    said = remove_person(gallery, "alice", None, str(db))
    assert said.startswith("removed alice (2 embedding(s))") and said.endswith(
        "deleted 2 track(s) and 1 decision(s) from the history")
    with HistoryStore.open(db) as store:
        assert not store.tracks(identity="alice")
