"""Search by face, measured: the photo-to-track rule and threshold (``calibrate``) and exact blocked
search vs a faiss index at 10k, 100k and 1M stored tracks (``latency``).

    python tools/bench_search.py calibrate UNKNOWNS EVENTS.jsonl [UNKNOWNS EVENTS.jsonl ...]
    python tools/bench_search.py latency [--sizes 10000 100000 1000000] [--store]
    python tools/bench_search.py calibrate-strangers UNKNOWNS EVENTS.jsonl [UNKNOWNS EVENTS.jsonl ...]
    python tools/bench_search.py stranger-memory [--rows 50000]

``calibrate`` reads the saved unknown tracks of runs (``run --save-unknowns DIR --events-out FILE`` on
tests/media/short_hamilton_clip.mp4 with an empty gallery), labels them with tests/history/search_labels.json,
embeds each track's best crops and both shared photos, and prints precision and recall of photo->track search
for each rule (the track's mean embedding, its nearest best crop, their mean) and threshold.

``calibrate-strangers`` reads the same saved tracks and measures the track-to-track rule of stranger ids
(stream/history/strangers.py): the unit-sphere distance between two tracks' means, for every pair of searchable
tracks (MIN_FACES, MIN_DETECTOR_SCORE). Same person: two tracks with one label (a named person); split into the
same appearance (overlapping frames: the footage run again, or another rendering of it) and another appearance.
Different people: two labels, or two tracks of one run that overlap in time on one source (one face cannot be
two tracks at once). Prints the distances and, per threshold, false merges, precision and recall.

``stranger-memory`` times the recorder's side of stranger ids on a SQLite store of ``--rows`` tagged synthetic
tracks: the first load of its memory, and tagging plus writing one unknown track against all of them.

``latency`` draws synthetic stored tracks around the real ones (each a real track's mean plus gaussian noise
of the spread seen between one person's tracks, renormalised), so distances and the near-duplicate structure
look like a store's, and times (a) exact blocked search over the in-memory array, (b) faiss IVF-flat on
inner product (the index the switch would take), with its recall@10 against exact, (c) with ``--store``, the
`search` command's path through a SQLite history store, from the store to the hits' rows (not the photo's
embedding): reading the narrow ``track_means`` table with the quality filter in SQL, and through the cache
beside the store (stream/history/search_cache.py): its first fill, a warm search, one after a run appended
1000 tracks, and a warm search with the file pages dropped from memory where the OS lets us (``cold``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stream.history.search import (  # noqa: E402
    block_distances,
    query_vector,
    search_blocks,
    unit_rows,
)

PEOPLE = ("lin-manuel-miranda", "alex-lacamoire")
THRESHOLDS = (0.30, 0.36, 0.38, 0.385, 0.39, 0.395, 0.40, 0.42, 0.45, 0.50)


def _queries(model) -> dict[str, dict[str, np.ndarray]]:
    """Per person: the photo's query, plain and with its mirror image."""
    from stream.images import read_image
    from stream.photos import PhotoEmbedder, choose_face

    out: dict[str, dict[str, np.ndarray]] = {}
    with PhotoEmbedder(model) as photos:
        for person in PEOPLE:
            image = read_image(REPO / "tests" / "media" / f"{person}.png")
            faces = photos.faces(image)
            i = choose_face(faces, image.shape, "largest")
            crop = faces.crops[i:i + 1]
            e = photos.engine.embed(np.concatenate([crop, crop[:, :, ::-1]]))
            out[person] = {"photo": query_vector(e[:1]), "photo+mirror": query_vector(e)}
    return out


def calibrate(pairs: list[tuple[Path, Path]]) -> None:
    from stream.inference.select import cpu_engine
    from stream.models.store import load_model
    from tests.history.search_set import labelled_tracks

    model = load_model(None)
    tracks = [t for unknowns, events in pairs for t in labelled_tracks(unknowns, events)]
    with cpu_engine(model) as engine:
        best = [unit_rows(engine.embed(t.crops)) for t in tracks]
    queries = _queries(model)
    rules = {
        "mean": lambda q, t, b: float(block_distances(q, t.mean[None])[0]),
        "best-min": lambda q, t, b: float(block_distances(q, b).min()),
        "avg(mean,best-min)": lambda q, t, b: (float(block_distances(q, t.mean[None])[0])
                                              + float(block_distances(q, b).min())) / 2,
    }
    print(f"model {model.name}; {len(tracks)} tracks: " + ", ".join(f"{t.name}={t.label}" for t in tracks))
    print("\ndistances (unit sphere), query photo+mirror, rule mean:")
    for t, b in zip(tracks, best):
        print(f"  {t.name:28s} {t.label!s:20s} " + "  ".join(
            f"{p[:4]} {rules['mean'](queries[p]['photo+mirror'], t, b):.3f}" for p in PEOPLE))
    print("\nmargins (query photo+mirror): farthest track of the person, nearest track of anyone else")
    for name, rule in rules.items():
        cells = []
        for person in PEOPLE:
            d = [(rule(queries[person]["photo+mirror"], t, b), t.label) for t, b in zip(tracks, best) if t.label]
            pos = max(x for x, label in d if label == person)
            neg = min(x for x, label in d if label != person)
            cells.append(f"{person}: {pos:.3f} / {neg:.3f} ({neg - pos:+.3f})")
        print(f"  {name:20s} " + "   ".join(cells))
    print("\n| query | rule | " + " | ".join(f"{th:g}" for th in THRESHOLDS) + " |")
    print("|---|---|" + "---|" * len(THRESHOLDS))
    for qkind in ("photo", "photo+mirror"):
        for name, rule in rules.items():
            cells = []
            for th in THRESHOLDS:
                tp = fp = fn = 0
                for person in PEOPLE:
                    for t, b in zip(tracks, best):
                        if t.label is None:
                            continue
                        hit = rule(queries[person][qkind], t, b) <= th
                        tp += hit and t.label == person
                        fp += hit and t.label != person
                        fn += (not hit) and t.label == person
                precision = tp / (tp + fp) if tp + fp else 1.0
                cells.append(f"P{precision:.2f} R{tp / max(tp + fn, 1):.2f}")
            print(f"| {qkind} | {name} | " + " | ".join(cells) + " |")


# -- strangers: track to track ------------------------------------------------------------------------

STRANGER_THRESHOLDS = (0.20, 0.25, 0.28, 0.30, 0.31, 0.32, 0.33, 0.35, 0.37, 0.40)


def stranger_pairs(runs: list[list]) -> tuple[dict[str, list[float]], list[tuple[float, str, str]]]:
    """(same-person distances by kind, different-person (distance, who, who)) over the runs' labelled
    tracks (search_set.LabelledTrack lists, one per run)."""
    import itertools

    from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES

    tracks = [(r, t) for r, run in enumerate(runs) for t in run
              if t.faces >= MIN_FACES and t.detector_score >= MIN_DETECTOR_SCORE]
    units = unit_rows(np.stack([t.mean for _, t in tracks]))
    same: dict[str, list[float]] = {"same appearance": [], "another appearance": []}
    different: list[tuple[float, str, str]] = []
    for (i, (ri, ti)), (j, (rj, tj)) in itertools.combinations(enumerate(tracks), 2):
        d = float(np.linalg.norm(units[i] - units[j]))
        overlap = ti.first_frame <= tj.last_frame and tj.first_frame <= ti.last_frame
        named = ti.label not in (None, "other") and tj.label not in (None, "other")
        if named and ti.label == tj.label:
            same["same appearance" if overlap else "another appearance"].append(d)
        elif (named and ti.label != tj.label) or (
                ti.label and tj.label and "other" in (ti.label, tj.label) and ti.label != tj.label):
            different.append((d, ti.label, tj.label))
        elif ri == rj and ti.source == tj.source and overlap:  # on screen together: two people
            different.append((d, f"{ti.label or '?'}#{ti.track_id}", f"{tj.label or '?'}#{tj.track_id}"))
    return same, different


def calibrate_strangers(pairs: list[tuple[Path, Path]], thresholds: list[float], replay_at: float) -> None:
    from stream.history.strangers import TRACK_TO_TRACK_THRESHOLDS
    from tests.history.search_set import labelled_tracks

    runs = [labelled_tracks(unknowns, events) for unknowns, events in pairs]
    same, different = stranger_pairs(runs)
    print(f"{len(runs)} runs, {sum(len(r) for r in runs)} labelled tracks; pairs: "
          + ", ".join(f"{k} {len(v)}" for k, v in same.items()) + f", different people {len(different)}")
    for kind, d in same.items():
        if d:
            print(f"  same person, {kind}: {min(d):.3f} - {max(d):.3f}")
    nearest: dict[tuple[str, str], float] = {}
    for d, a, b in different:
        key = tuple(sorted((a, b)))
        nearest[key] = min(nearest.get(key, 9.0), d)
    print("  different people, nearest per pair of labels: " + ", ".join(
        f"{a}/{b} {d:.3f}" for (a, b), d in sorted(nearest.items(), key=lambda kv: kv[1])[:8]))
    print(f"\nmeasured: {TRACK_TO_TRACK_THRESHOLDS}")
    print("| threshold | false merges | precision | recall (all same-person pairs) | recall (another appearance) |")
    print("|---|---|---|---|---|")
    everyone = [d for v in same.values() for d in v]
    for th in thresholds:
        tp = sum(d <= th for d in everyone)
        fp = sum(d <= th for d, _, _ in different)
        other = same["another appearance"]
        print(f"| {th:g} | {fp} / {len(different)} | {tp / max(tp + fp, 1):.3f} | {tp / max(len(everyone), 1):.3f} | "
              f"{sum(d <= th for d in other) / max(len(other), 1):.3f} |")
    replay_strangers(runs, replay_at)


def replay_strangers(runs: list[list], threshold: float, fps: float = 29.97) -> None:
    """The recorder's rule end to end: the runs' searchable tracks tagged run after run into a SQLite store
    (StrangerMemory, as the recorder does), then which labels each stranger id holds."""
    from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES
    from stream.history.store import HistoryStore, NewTrack
    from stream.history.strangers import StrangerMemory

    labels: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp, HistoryStore.open(Path(tmp) / "h.db") as store:
        memory = StrangerMemory("dlib-resnet-v1", threshold, 30, 50_000)
        for r, run in enumerate(runs):
            batch = [NewTrack(
                run_id=f"run-{r}", origin=None, source=t.source, track_id=t.track_id, started_at=t.first_frame / fps,
                ended_at=t.last_frame / fps, start_pts=t.first_frame / fps, end_pts=t.last_frame / fps,
                first_frame=t.first_frame, last_frame=t.last_frame, video=None, identity=None, score=None,
                distance=None, detector_score=t.detector_score, faces=t.faces, model="dlib-resnet-v1",
                embedding_space="dlib-resnet-v1", dim=len(t.mean), mean=np.asarray(t.mean, np.float32),
                best=np.asarray(t.mean, np.float32)[None]) for t in run
                if t.faces >= MIN_FACES and t.detector_score >= MIN_DETECTOR_SCORE]
            memory.tag(store, batch, time.time())
            memory.written(store.write_tracks(batch), batch)
            for t, new in zip([t for t in run if t.faces >= MIN_FACES and t.detector_score >= MIN_DETECTOR_SCORE],
                              batch):
                who = t.label if t.label not in (None, "other") else f"{t.label or '?'}#{t.track_id}@{t.source}"
                labels.setdefault(new.stranger_id, set()).add(who)
    mixed = {sid: who for sid, who in labels.items() if len({w for w in who if "#" not in w}) > 1}
    print(f"\nreplayed at {threshold}: {len(labels)} stranger ids over {len(runs)} runs; ids holding two named "
          f"people: {len(mixed)}")
    for sid, who in sorted(labels.items()):
        print(f"  {sid}: {', '.join(sorted(who))}")


def stranger_memory(rows: int) -> None:
    from stream.history.store import HistoryStore, NewTrack
    from stream.history.strangers import StrangerMemory, stranger_id

    embs = synthetic_tracks(rows + 20) * 1.4  # dlib's scale

    def new(i: int, run: str, tagged: bool) -> NewTrack:
        return NewTrack(run_id=run, origin=None, source=f"cam{i % 8}", track_id=i, started_at=float(i),
                        ended_at=i + 3.0, start_pts=0.0, end_pts=3.0, first_frame=0, last_frame=90, video=None,
                        identity=None, score=None, distance=None, detector_score=0.9, faces=30,
                        model="dlib-resnet-v1", embedding_space="dlib-resnet-v1", dim=embs.shape[1], mean=embs[i],
                        best=embs[i][None], stranger_id=stranger_id(i // 3 + 1) if tagged else None)

    print(f"cores {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp, HistoryStore.open(Path(tmp) / "h.db") as store:
        for start in range(0, rows, 5000):
            store.write_tracks([new(i, "old", True) for i in range(start, min(rows, start + 5000))])
        memory = StrangerMemory("dlib-resnet-v1", 0.30, 30, max(rows, 100))
        t0 = time.perf_counter()
        memory.refresh(store)
        print(f"first load of {len(memory):,} remembered tracks: {(time.perf_counter() - t0) * 1000:.0f} ms")
        tag_ms, match_ms = [], []
        for k in range(rows, rows + 20):
            batch = [new(k, "new", False)]
            t0 = time.perf_counter()
            memory.tag(store, batch, time.time())
            memory.written(store.write_tracks(batch), batch)
            tag_ms.append((time.perf_counter() - t0) * 1000)
            match_ms.append(_ms(lambda b=batch[0]: memory.match(b), 1))
        print(f"one unknown track: match {statistics.median(match_ms):.1f} ms, refresh + match + write "
              f"{statistics.median(tag_ms):.1f} ms (median of 20)")


# -- latency ---------------------------------------------------------------------------------------

def synthetic_tracks(n: int, seed: int = 0, dim: int = 128) -> np.ndarray:
    """(n, dim) unit float32 drawn around a few hundred centres ("people") that look like real dlib means:
    the spread within a person matches the clip's (unit distances 0.25-0.45 between one person's tracks)."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(max(n // 50, 10), dim)))
    who = rng.integers(0, len(centres), n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        part = slice(start, min(n, start + 100_000))
        noise = rng.normal(scale=0.03, size=(part.stop - part.start, dim)).astype(np.float32)
        out[part] = unit_rows(centres[who[part]] + noise)
    return out


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def latency(sizes: list[int], threshold: float, limit: int, queries: int, store: bool) -> None:
    from stream.history.search_index import NPROBE, TrackIndex, faiss_available

    print(f"cores {os.cpu_count()}; threshold {threshold}; limit {limit}; {queries} queries; "
          f"faiss {'installed' if faiss_available() else 'absent'}; nprobe {NPROBE}")
    print("| stored tracks | exact, streamed blocks ms | exact, held unit rows ms | faiss IVF ms | faiss build s | "
          "recall@10 vs exact | top-1 agree | store: table ms | store: cache fill ms | cache warm ms | "
          "after +1000 ms | cache cold ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        embs = synthetic_tracks(n)
        ids = np.arange(1, n + 1, dtype=np.int64)
        rng = np.random.default_rng(1)
        qs = [query_vector(embs[i] + rng.normal(scale=0.03, size=embs.shape[1])) for i in rng.integers(0, n, queries)]

        def streamed(q, ids=ids, embs=embs, n=n):
            return search_blocks(q, ((ids[s:s + 65536], embs[s:s + 65536]) for s in range(0, n, 65536)),
                                 threshold, limit)

        streamed_ms = statistics.median(_ms(lambda q=q: streamed(q), 3) for q in qs[:5])
        exact = TrackIndex.from_blocks([(ids, embs)], embs.shape[1], faiss_from=n + 1)
        held_ms = statistics.median(_ms(lambda q=q, ix=exact: ix.search(q, threshold, limit), 3) for q in qs[:5])
        faiss_ms = build_s = recall = top1 = float("nan")
        if faiss_available():
            t0 = time.perf_counter()
            index = TrackIndex.from_blocks([(ids, embs)], embs.shape[1], faiss_from=1)
            assert index.kind == "faiss-ivf"
            build_s = time.perf_counter() - t0
            faiss_ms = statistics.median(_ms(lambda q=q, ix=index: ix.search(q, threshold, limit), 3) for q in qs[:5])
            agree, first = [], []
            for q in qs:
                want = [h.id for h in exact.search(q, 2.0, 10)]
                got = [h.id for h in index.search(q, 2.0, 10)]
                agree.append(len(set(want) & set(got)) / len(want))
                first.append(want[0] == got[0])
            recall, top1 = float(np.mean(agree)), float(np.mean(first))
        nan = float("nan")
        st = _store_ms(embs, qs[:5], threshold, limit) if store else dict.fromkeys(
            ("table", "fill", "warm", "appended", "cold"), nan)
        print(f"| {n:,} | {streamed_ms:.1f} | {held_ms:.1f} | {faiss_ms:.2f} | {build_s:.1f} | {recall:.4f} | "
              f"{top1:.3f} | {st['table']:.0f} | {st['fill']:.0f} | {st['warm']:.0f} | {st['appended']:.0f} | "
              f"{st['cold']:.0f} |", flush=True)


def _store_ms(embs: np.ndarray, qs: list[np.ndarray], threshold: float, limit: int) -> dict[str, float]:
    """The search command's path through a SQLite store (median ms over ``qs``): see the module doc."""
    from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES, iter_store_blocks, searchable
    from stream.history.search_cache import cache_dir, fresh_segments, search_segments
    from stream.history.store import HistoryStore

    space = "dlib-resnet-v1"
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp, \
            HistoryStore.open(Path(tmp) / "h.db") as st:
        t0 = time.perf_counter()
        _bulk_fill(Path(tmp) / "h.db", embs)
        print(f"  ({len(embs):,} tracks written in {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

        def rows(hits):
            return [r for r in st.get([h.id for h in hits]) if searchable(r)]

        def table(q):
            blocks = iter_store_blocks(st, space, min_faces=MIN_FACES, min_detector_score=MIN_DETECTOR_SCORE)
            return rows(search_blocks(q, blocks, threshold, limit))

        def cached(q):
            segs = fresh_segments(st, space)
            return rows(search_segments(segs, q, threshold, limit, min_faces=MIN_FACES,
                                        min_detector_score=MIN_DETECTOR_SCORE))

        out = {"table": statistics.median(_ms(lambda q=q: table(q), 1) for q in qs[:3])}
        out["fill"] = _ms(lambda: cached(qs[0]), 1)
        out["warm"] = statistics.median(_ms(lambda q=q: cached(q), 1) for q in qs)
        assert [r.id for r in cached(qs[1])] == [r.id for r in table(qs[1])]  # the same hits
        st.write_tracks(_new_tracks(embs[:1000], len(embs)))
        out["appended"] = _ms(lambda: cached(qs[2]), 1)
        out["cold"] = float("nan")
        if _drop_pages(cache_dir(st.url)):
            out["cold"] = _ms(lambda: cached(qs[3]), 1)
        return out


def _bulk_fill(db: Path, embs: np.ndarray) -> None:
    """The rows ``HistoryStore.write`` would write (tracks and track_means), inserted in bulk with sqlite3:
    1M tracks through the store's batched commits take longer than the benchmark it serves (its ingest
    rate is tools/bench_history.py's figure)."""
    import sqlite3

    from stream.history.store import to_blob

    con = sqlite3.connect(db)
    with con:
        for start in range(0, len(embs), 50_000):
            part = embs[start:start + 50_000]
            rows = [(i, "bench", f"cam{i % 8}", i, float(i), float(i) + 3, float(i), float(i) + 3, 0, 90, 0.9, 30,
                     "dlib-resnet-v1", "dlib-resnet-v1", len(e), to_blob(e), to_blob(e[None]), 1)
                    for i, e in enumerate(part, start + 1)]
            con.executemany(
                "INSERT INTO tracks (id, run_id, source, track_id, started_at, ended_at, start_pts, end_pts, "
                "first_frame, last_frame, detector_score, faces, model, embedding_space, dim, mean, best, best_count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.executemany(
                "INSERT INTO track_means (id, embedding_space, source, started_at, ended_at, faces, detector_score, "
                "dim, mean) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r[0], r[13], r[2], r[4], r[5], r[11], r[10], r[14], r[15]) for r in rows])
    con.close()


def _new_tracks(embs: np.ndarray, first: int) -> list:
    from stream.history.store import NewTrack

    return [NewTrack(
        run_id="bench", origin=None, source=f"cam{i % 8}", track_id=i, started_at=float(i), ended_at=float(i) + 3,
        start_pts=float(i), end_pts=float(i) + 3, first_frame=0, last_frame=90, video=None, identity=None,
        score=None, distance=None, detector_score=0.9, faces=30, model="dlib-resnet-v1",
        embedding_space="dlib-resnet-v1", dim=embs.shape[1], mean=e, best=e[None], thumbnail=None)
        for i, e in enumerate(embs, first)]


def _drop_pages(folder: Path) -> bool:
    """Ask the OS to forget the cache files' pages (posix_fadvise DONTNEED): the next search reads them
    from disk, as the first search after a reboot would. False where that is not possible."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in folder.glob("*.np*"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("pairs", nargs="+", type=Path, metavar="UNKNOWNS EVENTS")
    cs = sub.add_parser("calibrate-strangers")
    cs.add_argument("pairs", nargs="+", type=Path, metavar="UNKNOWNS EVENTS")
    cs.add_argument("--thresholds", nargs="+", type=float, default=list(STRANGER_THRESHOLDS))
    cs.add_argument("--replay-at", type=float, default=0.30,
                    help="replay the rule over the runs at this threshold (the measured one for the runs' model)")
    sm = sub.add_parser("stranger-memory")
    sm.add_argument("--rows", type=int, default=50_000)
    lat = sub.add_parser("latency")
    lat.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    lat.add_argument("--threshold", type=float, default=0.39)
    lat.add_argument("--limit", type=int, default=50)
    lat.add_argument("--queries", type=int, default=50)
    lat.add_argument("--store", action="store_true", help="also time the whole search through a SQLite store")
    args = parser.parse_args()
    if args.what == "calibrate":
        if len(args.pairs) % 2:
            parser.error("calibrate takes UNKNOWNS EVENTS pairs")
        calibrate(list(zip(args.pairs[::2], args.pairs[1::2])))
    elif args.what == "stranger-memory":
        stranger_memory(args.rows)
    elif args.what == "calibrate-strangers":
        if len(args.pairs) % 2:
            parser.error("calibrate-strangers takes UNKNOWNS EVENTS pairs")
        calibrate_strangers(list(zip(args.pairs[::2], args.pairs[1::2])), args.thresholds, args.replay_at)
    else:
        latency(args.sizes, args.threshold, args.limit, args.queries, args.store)
    print(json.dumps({"done": args.what}), file=sys.stderr)


if __name__ == "__main__":
    main()
