"""What erasing and retention cost on a store of N tracks: `forget` of one person (secure delete + WAL
checkpoint; PostgreSQL: + VACUUM), a prune by age, and a size cap (does the file shrink: incremental
vacuum on a store made by this version, VACUUM on one made before it).

    python tools/bench_retention.py --tracks 100000 [--postgres postgresql://...]

Rows are bench_history's (5 KB incompressible thumbnails stand in for JPEGs, random embeddings, 1 in
3 tracks named, of 500 people): what costs is their size, not their values.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.history import retention
from stream.history.store import HistoryStore, RunRow
from tools.bench_history import tracks


def fill(store: HistoryStore, n: int, batch: int = 1000) -> None:
    rng = np.random.default_rng(1)
    thumbs = [rng.integers(0, 256, 5000, dtype=np.uint8).tobytes() for _ in range(64)]
    store.begin_run(RunRow("bench", 1.7e9, None, None, "live", "dlib-resnet-v1"))
    for start in range(0, n, batch):
        rows = tracks(min(batch, n - start), thumbs, 128, 5, True)
        for k, row in enumerate(rows):
            i = start + k
            row.track_id, row.started_at, row.ended_at = i, 1.7e9 + i * 3.0, 1.7e9 + i * 3.0 + 4
            row.identity = None if i % 3 else f"person{i % 500}"
        store.write(rows)


def timed(label: str, fn, engine) -> None:
    before = retention.file_bytes(engine)
    started = time.perf_counter()
    result = fn()
    took = time.perf_counter() - started
    after = retention.file_bytes(engine)
    print(f"  {label:<44} {took * 1000:9.0f} ms  -> {result!s:<38} file {before / 1e6:7.1f} -> {after / 1e6:7.1f} MB")


def bench(url: str, n: int, label: str, legacy: bool = False) -> None:
    with HistoryStore.open(url) as store:
        started = time.perf_counter()
        fill(store, n)
        print(f"{label}: {n} tracks written in {time.perf_counter() - started:.1f} s")
    if legacy:  # as a file made before auto_vacuum=INCREMENTAL: shrinking it takes a VACUUM
        conn = sqlite3.connect(url)
        conn.execute("pragma auto_vacuum=NONE")
        conn.execute("vacuum")
        conn.close()
    with HistoryStore.open(url) as store:
        e = store.engine
        timed("forget person7 (1/1500 of the tracks)", lambda: store.forget("person7"), e)
        cutoff_days = (time.time() - (1.7e9 + n * 3.0 * 0.25)) / 86400  # the oldest quarter
        timed("prune keep_days (the oldest quarter)", lambda: store.prune(keep_days=cutoff_days, max_bytes=None), e)
        cap = retention.used_bytes(e) // 2
        timed(f"prune max_bytes {cap / 1e6:.0f} MB (half)", lambda: store.prune(keep_days=None, max_bytes=cap), e)
        print(f"  used after the cap: {retention.used_bytes(e) / 1e6:.1f} MB (cap {cap / 1e6:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=20000)
    ap.add_argument("--postgres", help="also on this (empty, disposable) PostgreSQL database")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench(str(Path(tmp) / "new.db"), args.tracks, "SQLite (incremental vacuum)")
        bench(str(Path(tmp) / "old.db"), args.tracks, "SQLite made before auto_vacuum (VACUUM)", legacy=True)
    if args.postgres:
        bench(args.postgres, args.tracks, "PostgreSQL")


if __name__ == "__main__":
    main()
