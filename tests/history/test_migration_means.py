"""Migration 0002 on a store written by 0001: its tracks' means land in ``track_means``, and search
(which reads only that table) finds what a search over the tracks' own means finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, select

from stream.history import tables as T
from stream.history.migrate import _config, current, head
from stream.history.search import iter_store_blocks, query_vector, search_blocks
from stream.history.store import HistoryStore, from_blob, to_blob

SPACE = "dlib-resnet-v1"


def _old_store(path: Path, means: np.ndarray) -> None:
    """A history file as 0001 wrote it (no stranger_id, no track_means)."""
    from alembic import command

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0001")
        conn.execute(insert(T.runs), [{"id": "old-run", "started_at": 0.0, "ended_at": 9.0, "origin": None,
                                       "kind": "live", "model": SPACE}])
        conn.execute(insert(T.tracks), [{
            "run_id": "old-run", "origin": None, "source": f"cam{i % 2}", "track_id": i, "started_at": float(i),
            "ended_at": i + 1.0, "start_pts": float(i), "end_pts": i + 1.0, "first_frame": 0, "last_frame": 30,
            "video": None, "identity": None, "score": None, "distance": None, "detector_score": 0.6 + 0.05 * (i % 6),
            "faces": 2 + i % 8, "model": SPACE, "embedding_space": SPACE, "dim": means.shape[1],
            "mean": to_blob(m), "best": to_blob(m[None]), "best_count": 1, "thumbnail": b"\xff\xd8jpeg"}
            for i, m in enumerate(means)])
    assert current(engine) == "0001"
    engine.dispose()


@pytest.mark.slow
def test_an_0001_store_is_upgraded_with_its_means_and_searches_alike(tmp_path: Path):
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(5, 128))
    means = (centres[rng.integers(0, 5, 300)] * 0.1 + rng.normal(scale=0.02, size=(300, 128))).astype(np.float32)
    db = tmp_path / "old.db"
    _old_store(db, means)
    with HistoryStore.open(db) as store:
        assert current(store.engine) == head()
        with store.engine.connect() as conn:
            stored = conn.execute(select(T.tracks.c.id, T.tracks.c.mean, T.tracks.c.faces, T.tracks.c.detector_score,
                                         T.tracks.c.source)).all()
            copied = {r.id: r for r in conn.execute(select(T.track_means))}
        assert len(copied) == len(stored) == 300
        for r in stored:
            c = copied[r.id]
            assert (c.mean, c.faces, c.detector_score, c.source, c.embedding_space) == \
                   (r.mean, r.faces, r.detector_score, r.source, SPACE)
        ids = np.array([r.id for r in stored], np.int64)
        own = np.stack([from_blob(r.mean, 128)[0] for r in stored])
        solid = np.array([r.faces >= 5 and r.detector_score >= 0.7 for r in stored])
        for i in rng.integers(0, 300, 8):
            q = query_vector(means[i] + rng.normal(scale=0.01, size=128))
            want = search_blocks(q, [(ids[solid], own[solid])], 0.5, 40)
            got = search_blocks(q, iter_store_blocks(store, SPACE, min_faces=5, min_detector_score=0.7, block=64),
                                0.5, 40)
            assert want and [h.id for h in got] == [h.id for h in want]
            np.testing.assert_allclose([h.distance for h in got], [h.distance for h in want], atol=1e-6)
