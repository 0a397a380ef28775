"""The history store's costs: pipeline fps with history on vs off, ingest rate (tracks/s) into SQLite and
PostgreSQL, and bytes per track with thumbnails in the database vs as files beside it, side by side in one run.

    python tools/bench_history.py --fps-runs 5 --tracks 20000 [--postgres postgresql://...]
    python tools/bench_history.py --tracks 20000 --thumbnails-from RUN.db

``--fps-runs N``: N pairs of real `facestream run`s on the Hamilton clip (Lin-Manuel Miranda and Alex
Lacamoire enrolled), one with ``--history`` and one without, alternating which goes first, so load from
other work falls on both alike; the medians, the spread and the median of the pairs' ratios are printed.
The last run's store gives the thumbnails (or --thumbnails-from).

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


def fps_on_off(runs: int, workdir: Path) -> Path:
    """Interleaved pairs of runs with and without --history; prints the figures; the last store."""
    import statistics
    import subprocess

    from tools.bench_pipeline import ENROLL, MEDIA, facestream

    gallery = workdir / "gallery.npz"
    for name, file in ENROLL.items():
        subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name", name,
                        str(MEDIA / file)], check=True, capture_output=True)
    clip = MEDIA / "short_hamilton_clip.mp4"
    figures: dict[str, list[dict]] = {"off": [], "on": []}
    store = workdir / "history.db"
    for run in range(runs):
        order = ("off", "on") if run % 2 == 0 else ("on", "off")
        for kind in order:
            store.unlink(missing_ok=True)
            extra = ["--history", str(store)] if kind == "on" else []
            figures[kind].append(facestream(clip, gallery, workdir, extra))
        print(f"pair {run + 1}: off {figures['off'][-1]['pipeline_fps']:.1f} fps, "
              f"on {figures['on'][-1]['pipeline_fps']:.1f} fps", file=sys.stderr, flush=True)
    for key, label in (("pipeline_fps", "pipeline fps"), ("process_fps", "process fps (with start-up)"),
                       ("stage_ms_per_frame", "publisher ms/frame")):
        off = [f[key] for f in figures["off"]]
        on = [f[key] for f in figures["on"]]
        if not all(isinstance(v, (int, float)) for v in off + on):
            continue
        ratios = [b / a for a, b in zip(off, on) if a]
        print(f"{label}: off median {statistics.median(off):.2f} (range {min(off):.2f}-{max(off):.2f}), "
              f"on median {statistics.median(on):.2f} (range {min(on):.2f}-{max(on):.2f}); "
              f"on/off per pair median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")
    for kind in ("off", "on"):
        last = figures[kind][-1]
        print(f"history {kind}, last run: CPU ms/frame {last.get('cpu_ms_per_frame')}; faces {last['faces']}, "
              f"embedded {last['embedded']}, tracks {last['tracks']}, publisher ms/frame {last['stage_ms_per_frame']}")
    print(f"named tracks off / on (last pair): {figures['off'][-1]['named_tracks']} / "
          f"{figures['on'][-1]['named_tracks']}")
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--thumbnails-from", type=Path, help="a history store a run wrote (default: the fps runs')")
    ap.add_argument("--fps-runs", type=int, default=0, help="pairs of runs with and without --history")
    ap.add_argument("--postgres", help="also ingest into this PostgreSQL URL; `auto`: a throwaway server on "
                                       "127.0.0.1 (fsync off), as the tests start one")
    args = ap.parse_args()
    keep = tempfile.TemporaryDirectory()
    if args.fps_runs:
        store = fps_on_off(args.fps_runs, Path(keep.name))
        args.thumbnails_from = args.thumbnails_from or store
    if args.thumbnails_from is None:
        ap.error("--thumbnails-from RUN.db, or --fps-runs N to make one")
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
    if args.postgres == "auto":
        from tests.support.postgres import postgres_server

        with postgres_server() as server:
            rate = ingest(server.url, tracks(args.tracks, thumbs, 128, 5, True), args.batch)
        print(f"postgresql ingest (a throwaway server, fsync off): {rate:,.0f} tracks/s ({args.batch} per commit)")
    elif args.postgres:
        rate = ingest(args.postgres, tracks(args.tracks, thumbs, 128, 5, True), args.batch)
        print(f"postgresql ingest: {rate:,.0f} tracks/s ({args.batch} per commit)")


if __name__ == "__main__":
    main()
