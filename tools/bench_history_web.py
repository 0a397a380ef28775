"""The History API's latency over a real uvicorn server, for stores of N synthetic tracks (SQLite).

One day of tracks on 8 cameras, 200 named people and unknowns, a ~5 KB thumbnail each (as the run
stores), embeddings around a few hundred centres (tools/bench_search.synthetic_tracks). Times the
page's requests: who was seen that day, the day's timeline, one person's tracks, a thumbnail, search
by a stored track on a cold view (the store scanned while the index builds) and on the held index, and
how long the background build took.

    python tools/bench_history_web.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.history.store import HistoryStore, NewTrack
from stream.web.app import WebContext, create_app
from stream.web.history import HistoryView
from stream.web.server import WebServer
from tools.bench_search import synthetic_tracks

DAY = 1777593600.0  # 2026-05-01T00:00:00Z


def fill(db: Path, n: int) -> None:
    embs = synthetic_tracks(n)
    rng = np.random.default_rng(1)
    thumb = b"\xff\xd8" + rng.bytes(5000)
    with HistoryStore.open(db) as store:
        for start in range(0, n, 2000):
            batch = []
            for i in range(start, min(n, start + 2000)):
                t0 = DAY + 86400.0 * i / n
                who = None if i % 3 == 0 else f"person-{i % 200:03d}"
                batch.append(NewTrack(
                    run_id="bench", origin=None, source=f"cam{i % 8}", track_id=i, started_at=t0, ended_at=t0 + 4,
                    start_pts=t0, end_pts=t0 + 4, first_frame=0, last_frame=100, video=None, identity=who,
                    score=0.7 if who else None, distance=0.4, detector_score=0.9, faces=20, model="dlib-resnet-v1",
                    embedding_space="dlib-resnet-v1", dim=128, mean=embs[i], best=embs[i][None], thumbnail=thumb))
            store.write(batch)


def get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", path)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {data[:200]!r}")
    return data


def ms(port: int, path: str, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        get(port, path)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench(n: int, folder: Path) -> dict[str, float]:
    db = folder / f"h{n}.db"
    t0 = time.perf_counter()
    fill(db, n)
    out = {"fill_s": time.perf_counter() - t0, "mb": db.stat().st_size / 2**20}
    day = f"since={DAY}&until={DAY + 86400}"
    built = time.perf_counter()
    history = HistoryView(str(db), "dlib-resnet-v1", refresh_s=0.5)
    server = WebServer(create_app(WebContext(history=history)), "127.0.0.1:0", None).start()
    try:
        port = server.port
        t0 = time.perf_counter()
        get(port, "/api/history/search?track=7")
        out["search_cold_ms"] = (time.perf_counter() - t0) * 1000
        while not history.indexes.ready("dlib-resnet-v1"):
            time.sleep(0.01)
        out["index_build_s"] = time.perf_counter() - built
        out["search_held_ms"] = ms(port, "/api/history/search?track=7")
        out["people_ms"] = ms(port, f"/api/history/people?{day}")
        out["timeline_ms"] = ms(port, "/api/history/timeline?day=2026-05-01&tz=UTC")
        out["tracks_ms"] = ms(port, "/api/history/tracks?who=person-007&limit=200")
        out["thumb_ms"] = ms(port, "/api/history/thumb/5", 20)
        out["intervals"] = sum(len(v) for v in json.loads(get(port, "/api/history/timeline?day=2026-05-01"))
                               ["cameras"].values())
    finally:
        server.stop()
        history.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-bench-web-") as tmp:
        for n in args.sizes:
            result = bench(n, Path(tmp))
            print(f"{n:>9} tracks: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
