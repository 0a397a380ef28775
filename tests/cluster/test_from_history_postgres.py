"""`facestream cluster faces --history postgresql://...` on a real PostgreSQL server started on 127.0.0.1
(skipped where there is none): the same unknowns, filters and output as from SQLite."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from stream.history.store import HistoryStore
from tests.cluster.test_from_history import _jpeg, _track
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # starts a server


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


def test_a_postgresql_stores_unknowns_cluster_with_their_strangers(cli, default_model, pg, tmp_path) -> None:
    manifest = default_model.manifest
    dim = manifest.embedding_size
    rng = np.random.default_rng(3)
    ann, bob = rng.normal(size=dim), rng.normal(size=dim)

    def track(n: int, mean: np.ndarray, **kw):
        # the model's own scale (dlib's outputs have norms near 1.4): its threshold applies there
        base = _track(n, thumbnail=_jpeg(40 * n), **kw)
        m = (1.4 * mean / np.linalg.norm(mean)).astype(np.float32)
        return replace(base, model=manifest.name, embedding_space=manifest.embedding_space, dim=dim, mean=m,
                       best=m[None])

    with HistoryStore.open(pg.url) as store:
        first = store.new_stranger(manifest.embedding_space, 1.0)
        second = store.new_stranger(manifest.embedding_space, 2.0)
        ids = store.write([track(0, ann, stranger=f"stranger-{first:06d}"),
                           track(1, ann + 0.05 * rng.normal(size=dim), stranger=f"stranger-{second:06d}"),
                           track(2, bob), track(3, ann, identity="Ann")])
    out = tmp_path / "out"
    proc = cli("cluster", "faces", "--history", pg.url, "--out", out, check=True)
    record = json.loads((out / "clusters.json").read_text())
    assert record["tracks"] == 3  # the named track is not an unknown
    [one] = record["clusters"]
    assert one["tracks"] == [f"cam_1-0-row{ids[0]}", f"cam_1-1-row{ids[1]}"]
    assert one["strangers"] == [f"stranger-{first:06d}", f"stranger-{second:06d}"]  # a merge hint
    assert "merge hint" in proc.stdout
    assert record["singletons"] == [f"cam_1-2-row{ids[2]}"]
    assert (out / "cluster-001" / f"cam_1-0-row{ids[0]}" / "crop-0.png").is_file()
