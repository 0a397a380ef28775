"""Search by face, measured: the photo-to-track rule and threshold (``calibrate``) and exact blocked
search vs a faiss index at 10k, 100k and 1M stored tracks (``latency``).

    python tools/bench_search.py calibrate UNKNOWNS EVENTS.jsonl [UNKNOWNS EVENTS.jsonl ...]
    python tools/bench_search.py latency [--sizes 10000 100000 1000000] [--store]

``calibrate`` reads the saved unknown tracks of runs (``run --save-unknowns DIR --events-out FILE`` on
tests/media/short_hamilton_clip.mp4 with an empty gallery), labels them with tests/history/search_labels.json,
embeds each track's best crops and both shared photos, and prints precision and recall of photo->track search
for each rule (the track's mean embedding, its nearest best crop, their mean) and threshold.

``latency`` draws synthetic stored tracks around the real ones (each a real track's mean plus gaussian noise
of the spread seen between one person's tracks, renormalised), so distances and the near-duplicate structure
look like a store's, and times (a) exact blocked search over the in-memory array, (b) faiss IVF-flat on
inner product (the index the switch would take), with its recall@10 against exact, (c) with ``--store``, the
whole `search` path through a SQLite history store (reading the blobs included).
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
          "recall@10 vs exact | top-1 agree | SQLite store search ms |")
    print("|---|---|---|---|---|---|---|---|")
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
        store_ms = _store_ms(embs, qs[:3], threshold, limit) if store else float("nan")
        print(f"| {n:,} | {streamed_ms:.1f} | {held_ms:.1f} | {faiss_ms:.2f} | {build_s:.1f} | {recall:.4f} | "
              f"{top1:.3f} | {store_ms:.0f} |", flush=True)


def _store_ms(embs: np.ndarray, qs: list[np.ndarray], threshold: float, limit: int) -> float:
    """The whole search through a SQLite store: read every mean blob, search, fetch the hits' rows."""
    from stream.history.store import HistoryStore, NewTrack

    with tempfile.TemporaryDirectory() as tmp, HistoryStore.open(Path(tmp) / "h.db") as st:
        for start in range(0, len(embs), 20000):
            st.write_tracks([NewTrack(
                run_id="bench", origin=None, source=f"cam{i % 8}", track_id=i, started_at=float(i),
                ended_at=float(i) + 3, start_pts=float(i), end_pts=float(i) + 3, first_frame=0, last_frame=90,
                video=None, identity=None, score=None, distance=None, detector_score=0.9, faces=30,
                model="dlib-resnet-v1", embedding_space="dlib-resnet-v1", dim=embs.shape[1], mean=e,
                best=e[None], thumbnail=None) for i, e in enumerate(embs[start:start + 20000], start)])

        def one(q):
            hits = search_blocks(q, st.iter_embeddings("dlib-resnet-v1"), threshold, limit)
            st.get([h.id for h in hits])

        return statistics.median(_ms(lambda q=q: one(q), 1) for q in qs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("pairs", nargs="+", type=Path, metavar="UNKNOWNS EVENTS")
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
    else:
        latency(args.sizes, args.threshold, args.limit, args.queries, args.store)
    print(json.dumps({"done": args.what}), file=sys.stderr)


if __name__ == "__main__":
    main()
