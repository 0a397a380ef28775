"""The history store's costs: ingest rate (tracks/s) into SQLite and PostgreSQL, and bytes per track with
thumbnails in the database vs as files beside it.

    python tools/bench_history.py --tracks 20000 --thumbnails-from RUN.db [--postgres postgresql://...]

Thumbnails are real ones from a store a run wrote (--thumbnails-from), cycled; embeddings are random
(their size, not their values, is what costs). Each batch is one commit of --batch tracks, as the
recorder writes them.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.history.store import HistoryStore, NewTrack


def tracks(n: int, thumbs: list[bytes], dim: int, best: int, with_thumbs: bool) -> list[NewTrack]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = 1.7e9 + i * 3.0
        out.append(NewTrack(run_id="bench", origin=None, source=f"cam{i % 8}", track_id=i, started_at=t,
                            ended_at=t + 4.0, start_pts=t, end_pts=t + 4, first_frame=i * 100, last_frame=i * 100 + 99,
                            video=None, identity=None if i % 3 else f"person{i % 500}", score=0.8, distance=0.4,
                            detector_score=0.9, faces=12, model="dlib-resnet-v1", embedding_space="dlib-resnet-v1",
                            dim=dim, mean=rng.normal(size=dim).astype(np.float32),
                            best=rng.normal(size=(best, dim)).astype(np.float32),
                            thumbnail=thumbs[i % len(thumbs)] if with_thumbs else None))
    return out


def ingest(url: str, rows: list[NewTrack], batch: int) -> float:
    with HistoryStore.open(url) as store:
        start = time.perf_counter()
        for k in range(0, len(rows), batch):
            store.write(rows[k:k + batch])
        return len(rows) / (time.perf_counter() - start)


def file_bytes(path: Path) -> int:
    return sum(os.stat(p).st_blocks * 512 for p in path.parent.glob(path.name + "*"))  # db + -wal + -shm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--thumbnails-from", type=Path, required=True, help="a history store a run wrote")
    ap.add_argument("--postgres", help="also ingest into this PostgreSQL URL")
    args = ap.parse_args()
    thumbs = [bytes(r[0]) for r in sqlite3.connect(args.thumbnails_from).execute(
        "select thumbnail from tracks where thumbnail is not null")]
    mean_thumb = sum(map(len, thumbs)) / len(thumbs)
    with tempfile.TemporaryDirectory() as tmp:
        inside, beside = Path(tmp) / "inside.db", Path(tmp) / "beside.db"
        rate = ingest(str(inside), tracks(args.tracks, thumbs, 128, 5, True), args.batch)
        ingest(str(beside), tracks(args.tracks, thumbs, 128, 5, False), args.batch)
        folder = Path(tmp) / "thumbs"
        folder.mkdir()
        for i in range(args.tracks):  # what "beside" writes: one JPEG file per track
            (folder / f"{i}.jpg").write_bytes(thumbs[i % len(thumbs)])
        files = sum(os.stat(p).st_blocks * 512 for p in folder.iterdir())
        for db in (inside, beside):  # checkpoint the WAL so the file is the store
            sqlite3.connect(db).execute("pragma wal_checkpoint(TRUNCATE)").close()
        n = args.tracks
        print(f"thumbnails: {len(thumbs)} real ones, mean {mean_thumb:.0f} bytes")
        print(f"sqlite ingest: {rate:,.0f} tracks/s ({args.batch} per commit)")
        print(f"bytes/track, thumbnails inside the db: {file_bytes(inside) / n:,.0f}")
        print(f"bytes/track, thumbnails beside it: {file_bytes(beside) / n:,.0f} db + {files / n:,.0f} files "
              f"= {(file_bytes(beside) + files) / n:,.0f} (+1 inode each)")
    if args.postgres:
        rate = ingest(args.postgres, tracks(args.tracks, thumbs, 128, 5, True), args.batch)
        print(f"postgresql ingest: {rate:,.0f} tracks/s ({args.batch} per commit)")


if __name__ == "__main__":
    main()
