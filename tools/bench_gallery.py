#!/usr/bin/env python
"""Gallery matching at scale: publisher ms a frame with galleries of 4, 100k and 1M entries, side by side.

What is timed is the publisher's own work per frame, ``RecognitionStage.process``, replayed over
the Hamilton clip's real faces: every face of every frame is detected, aligned and embedded once
up front (MediaPipe + the default model, on the CPU), given a track id by a tiny IoU matcher, and
then fed frame by frame to a stage holding each gallery. Every face is treated as embedded on
every frame (the live pipeline re-embeds confident tracks only every ``reembed_every`` frames), so
the figures are an upper bound of the matching cost; "as run" replays the detect worker's cadence
instead (a confident track re-embedded every 10th frame), what a run's publisher does. Also
measured, per index (IVF-PQ fast scan at each ``--nprobe`` x ``--candidates``, HNSW at each
``--ef``, IVF-Flat at each ``--nprobe``): its top-1 agreement with exact search (the same name, or a
row at the same distance) and its decision agreement (the same name within the model's threshold,
or unknown for both), build time and size; the memory of each gallery, loading a 1M gallery, and
enrolling one photo into it (append) vs the full rewrite.

The 4-entry gallery is the tests/media photos. The large ones add synthetic entries whose
distances look like real ones: 90% a "crowd" drawn from a Gaussian with the mean and covariance of
the clip's real embeddings, widened so two crowd entries lie ~0.9 apart (dlib's different-people
distance) and scaled to the model's typical norm; 10% look-alikes, real clip embeddings moved
0.45-0.7 away (just past and under the 0.6 threshold), so the nearest entry often is a hard one.

    python tools/bench_gallery.py                # 4, 100k, 1M; IVF-PQ, HNSW and IVF (HNSW: ~40 min to build at 1M)
    python tools/bench_gallery.py --sizes 4 100000 --index hnsw --ef 128 192 --json out.json
    python tools/bench_gallery.py --index ivfpq --nprobe 128 256 --candidates 256 512
    python tools/bench_gallery.py --cache /tmp/bench-index   # keep the built indexes for the next run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
PHOTOS = {"lin-manuel-miranda": "lin-manuel-miranda.png", "alex-lacamoire": "alex-lacamoire.png",
          "barack-obama": "obama.jpg", "joe-biden": "biden.jpg"}


def clip_frames(model, clip: Path) -> list[dict]:
    """Per frame: boxes, landmarks, scores, embeddings and IoU-matched track ids of the clip's faces."""
    import cv2

    from stream.photos import PhotoEmbedder

    frames: list[dict] = []
    prev: list[tuple[int, np.ndarray]] = []
    next_id = 1
    cap = cv2.VideoCapture(str(clip))
    with PhotoEmbedder(model) as photos:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            faces = photos.faces(image)
            emb = photos.embed(faces)
            ids = []
            for box in faces.xyxy:
                best = max(prev, key=lambda p, b=box: _iou(p[1], b), default=None)
                if best is not None and _iou(best[1], box) > 0.3 and best[0] not in ids:
                    ids.append(best[0])
                else:
                    ids.append(next_id)
                    next_id += 1
            prev = list(zip(ids, faces.xyxy))
            frames.append({"xyxy": faces.xyxy.copy(), "kps": faces.keypoints.copy(), "scores": faces.score.copy(),
                           "layout": faces.layout,
                           "ids": ids, "emb": emb})
    return frames


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def synthetic(real: np.ndarray, n: int, seed: int = 0, lookalikes: float = 0.1) -> np.ndarray:
    """``n`` entries distributed like other people's embeddings near the real ones (see the module doc);
    ``lookalikes``: the share placed 0.45-0.7 from the real faces (the queries): the hard part."""
    rng = np.random.default_rng(seed)
    mu = real.mean(0)
    norm = float(np.linalg.norm(real, axis=1).mean())
    cov = np.cov(real.T) + 1e-4 * np.eye(real.shape[1])
    chol = np.linalg.cholesky(cov)
    crowd_n = n - int(n * lookalikes)
    out = np.empty((n, real.shape[1]), np.float32)
    for s in range(0, crowd_n, 100_000):
        k = min(100_000, crowd_n - s)
        z = rng.standard_normal((k, real.shape[1])).astype(np.float32) @ chol.T.astype(np.float32)
        z *= 0.9 / np.sqrt(2 * np.trace(cov))  # two crowd entries ~0.9 apart
        v = mu + z
        out[s:s + k] = v / np.linalg.norm(v, axis=1, keepdims=True) * norm
    k = n - crowd_n
    base = real[rng.integers(len(real), size=k)]
    step = rng.standard_normal(base.shape).astype(np.float32)
    step *= (rng.uniform(0.45, 0.7, size=(k, 1)) / np.linalg.norm(step, axis=1, keepdims=True)).astype(np.float32)
    out[crowd_n:] = base + step
    return out[rng.permutation(n)]


_ARRAYS = ("xyxy", "kps", "scores", "ids", "emb")


def save_frames(path: Path, frames: list[dict]) -> None:
    """The clip's faces as plain arrays (npz, no pickle: a file is never code), with its layouts' names."""
    arrays = {f"{i}_{key}": np.asarray(f[key]) for i, f in enumerate(frames) for key in _ARRAYS}
    layouts = np.array([f["layout"].name for f in frames])
    with open(path, "wb") as out:
        np.savez(out, layouts=layouts, **arrays)


def load_frames(path: Path) -> list[dict] | None:
    """Frames ``save_frames`` wrote, or None (made again) when their layout is not the default detector's."""
    from stream.faces import MEDIAPIPE_FACE

    with np.load(path, allow_pickle=False) as data:
        layouts = data["layouts"]
        if any(name != MEDIAPIPE_FACE.name for name in layouts):
            return None
        frames = [{key: data[f"{i}_{key}"] for key in _ARRAYS} for i in range(len(layouts))]
    for f in frames:
        f["layout"], f["ids"] = MEDIAPIPE_FACE, [int(i) for i in f["ids"]]
    return frames


def publisher_ms(manifest, gallery, frames: list[dict], repeats: int = 1, reembed_every: int | None = None) -> float:
    """Best wall ms a frame over ``repeats``; the CPU ms of that repeat (this process's CPU time: what a
    quiet machine's wall time would be, for the single-threaded index path) goes to ``LAST_CPU_MS``.

    ``reembed_every`` None: every face embedded every frame (the upper bound); else the detect
    worker's cadence (stream/track/cadence.py, driven by the stage's confident tracks) picks the faces
    embedded, as in a run with ``recognition.reembed_every`` (10 by default)."""
    from stream.faces import Faces
    from stream.recognize.stage import FrameResult, RecognitionStage
    from stream.recognize.voting import VotingConfig
    from stream.track.cadence import EmbeddingCadence, in_doubt

    global LAST_CPU_MS, LAST_EMBEDDED
    best = float("inf")
    for _ in range(repeats):
        stage = RecognitionStage(manifest, gallery, VotingConfig())
        cadence = EmbeddingCadence(reembed_every or 1)
        embedded = 0
        started, cpu = time.perf_counter(), time.process_time()
        for i, f in enumerate(frames):
            faces = Faces(f["xyxy"], f["scores"], f["kps"], track_id=f["ids"],
                          embeddings=f["emb"] if len(f["emb"]) else None, layout=f["layout"])
            mask = np.ones(len(f["ids"]), bool)
            if reembed_every is not None:
                mask = cadence.select(np.asarray(f["ids"]), i, in_doubt(f["xyxy"]))
            embedded += int(mask.sum())
            out = stage.process(FrameResult("clip", i, i / 30, 0.0, faces, mask))
            for tid, confident in out.status:
                cadence.mark(tid, confident)
        wall = (time.perf_counter() - started) * 1000 / len(frames)
        if wall < best:
            best, LAST_CPU_MS = wall, (time.process_time() - cpu) * 1000 / len(frames)
            LAST_EMBEDDED = embedded
    return best


LAST_CPU_MS = float("nan")
LAST_EMBEDDED = 0


def agreement(exact_gallery, index_gallery, queries: np.ndarray, threshold: float) -> tuple[float, float]:
    """(top-1: the same name or a row at the same distance; decision: the same name within
    ``threshold``, or beyond it for both) over ``queries``."""
    en, ed = exact_gallery.match(queries)
    xn, xd = index_gallery.match(queries)
    same = [a == b or abs(float(p) - float(q)) < 1e-5 for a, b, p, q in zip(en, xn, ed, xd)]
    decided = [(a if p <= threshold else None) == (b if q <= threshold else None) or s
               for a, b, p, q, s in zip(en, xn, ed, xd, same)]
    return sum(same) / len(same), sum(decided) / len(decided)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="BLAS/faiss threads (0: as installed)")
    ap.add_argument("--index", nargs="+", choices=["ivfpq", "hnsw", "ivf"], default=["ivfpq", "hnsw", "ivf"])
    ap.add_argument("--ef", type=int, nargs="+", default=[96, 192, 256], help="HNSW efSearch values, each measured")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[128, 256],
                    help="IVF (and IVF-PQ) lists searched per query, each measured")
    ap.add_argument("--candidates", type=int, nargs="+", default=[256, 512],
                    help="IVF-PQ: candidates re-ranked exactly per query, each measured with each --nprobe")
    ap.add_argument("--lookalikes", type=float, default=0.1,
                    help="share of synthetic entries placed 0.45-0.7 from the clip's faces (0: a crowd only)")
    ap.add_argument("--frames", type=Path, help="keep the clip's detected and embedded faces in this file, "
                                                 "for the next run (a minute of CPU each time otherwise)")
    ap.add_argument("--cache", type=Path, help="keep built indexes here (named by the rows, as beside a gallery)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import faiss

    from stream.images import read_image
    from stream.models.store import ModelStore
    from stream.photos import PhotoEmbedder
    from stream.recognize.gallery import Gallery
    from stream.recognize.gallery_index import (
        CANDIDATES,
        GallerySearch,
        GallerySearchConfig,
        content_key,
        load_or_build,
        tune,
    )

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    model = ModelStore().get()
    manifest = model.manifest
    t0 = time.perf_counter()
    frames = load_frames(args.frames) if args.frames is not None and args.frames.is_file() else None
    if frames is None:
        frames = clip_frames(model, MEDIA / "short_hamilton_clip.mp4")
        if args.frames is not None:
            save_frames(args.frames, frames)
    real = np.concatenate([f["emb"] for f in frames if len(f["emb"])])
    print(f"clip: {len(frames)} frames, {len(real)} faces embedded in {time.perf_counter() - t0:.1f} s", flush=True)
    base = Gallery.new(manifest)
    with PhotoEmbedder(model) as photos:
        for name, file in PHOTOS.items():
            base.add(name, photos.embed(photos.faces(read_image(MEDIA / file))), [file])
    rng = np.random.default_rng(1)
    queries = np.concatenate([real, real + rng.normal(0, 0.03, real.shape).astype(np.float32)])
    rows = []
    for size in args.sizes:
        g = Gallery(manifest.name, manifest.embedding_space, manifest.metric, manifest.embedding_size,
                    base.names, base.embeddings, base.sources)
        if size > len(base):
            extra = size - len(base)
            g.add("synthetic", synthetic(real, extra, seed=size, lookalikes=args.lookalikes))
            g.names[len(base):] = [f"person-{i:07d}" for i in range(extra)]
        before = rss_mb()
        g.search()
        row = {"entries": len(g), "gallery_mb": round(g.embeddings.nbytes / 2**20, 1),
               "exact_ms_per_frame": round(publisher_ms(manifest, g, frames, args.repeats), 3),
               "exact_cpu_ms_per_frame": round(LAST_CPU_MS, 3)}
        row["exact_search_extra_mb"] = round(rss_mb() - before, 1)
        row["exact_as_run_ms_per_frame"] = round(publisher_ms(manifest, g, frames, 1, reembed_every=10), 3)
        row["exact_as_run_cpu_ms_per_frame"] = round(LAST_CPU_MS, 3)
        if len(g) >= 1000:
            matrix = g.search().exact.matrix
            for kind in args.index:
                config = GallerySearchConfig(index="faiss", index_type=kind)
                # one folder per size and kind: saving an index deletes the other ones in its folder
                cache = None if args.cache is None else args.cache / f"{len(g)}-{config.index_tag}"
                cached = cache is not None and (
                    cache / f"{content_key(matrix, g.metric)}.{config.index_tag}.faiss").is_file()
                started = time.perf_counter()
                index = load_or_build(matrix, g.metric, config, cache)
                row[f"{kind}_{'load' if cached else 'build'}_s"] = round(time.perf_counter() - started, 2)
                row[f"{kind}_mb"] = round(faiss.serialize_index(index).nbytes / 2**20, 1)
                indexed = Gallery(g.model, g.embedding_space, g.metric, g.dim, g.names, g.embeddings, g.sources)
                for p, c in _points(kind, args):
                    config = config.model_copy(update={"ef_search": p, "nprobe": p})
                    tune(index, config)
                    # the matrix shared, not copied
                    indexed._search = GallerySearch(g.search().exact, index, len(g), c or CANDIDATES)
                    at = _at(kind, p, c)
                    row[f"ms_per_frame {at}"] = round(publisher_ms(manifest, indexed, frames, args.repeats), 3)
                    row[f"cpu_ms_per_frame {at}"] = round(LAST_CPU_MS, 3)
                    row[f"as_run_ms_per_frame {at}"] = round(
                        publisher_ms(manifest, indexed, frames, args.repeats, reembed_every=10), 3)
                    row[f"as_run_cpu_ms_per_frame {at}"] = round(LAST_CPU_MS, 3)
                    row["as_run_embedded"] = LAST_EMBEDDED
                    top1, decided = agreement(g, indexed, queries, manifest.threshold)
                    row[f"top1 {at}"], row[f"decision {at}"] = round(top1, 5), round(decided, 5)
                    print(json.dumps({"entries": len(g), at: row[f"ms_per_frame {at}"],
                                      "cpu": row[f"cpu_ms_per_frame {at}"],
                                      "as_run": row[f"as_run_ms_per_frame {at}"],
                                      "as_run_cpu": row[f"as_run_cpu_ms_per_frame {at}"], "top1": row[f"top1 {at}"],
                                      "decision": row[f"decision {at}"]}), flush=True)
                del index, indexed
            row["agreement_queries"] = len(queries)
        if size >= 100_000:
            row.update(enroll_times(g, manifest, real[0]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    points = [_at(k, p, c) for k in args.index for p, c in _points(k, args)]
    print("| entries | exact ms/frame (CPU) | " + " | ".join(f"{p} ms/frame (CPU), top-1, decision" for p in points)
          + " | build s (ivfpq / hnsw / ivf) | gallery / ivfpq / hnsw / ivf MB | load s | enroll (append) s "
          "| enroll (rewrite) s |")
    print("|---" * (8 + len(points)) + "|")
    for r in rows:
        cells = " | ".join(f"{r.get(f'ms_per_frame {p}', '-')} ({r.get(f'cpu_ms_per_frame {p}', '-')}); as run "
                           f"{r.get(f'as_run_ms_per_frame {p}', '-')} ({r.get(f'as_run_cpu_ms_per_frame {p}', '-')}), "
                           f"{_pct(r.get(f'top1 {p}'))}, "
                           f"{_pct(r.get(f'decision {p}'))}" for p in points)
        build = " / ".join(str(r.get(f"{k}_build_s", r.get(f"{k}_load_s", "-"))) for k in ("ivfpq", "hnsw", "ivf"))
        exact = (f"{r['exact_ms_per_frame']} ({r['exact_cpu_ms_per_frame']}); as run {r['exact_as_run_ms_per_frame']} "
                 f"({r['exact_as_run_cpu_ms_per_frame']})")
        print(f"| {r['entries']} | {exact} | {cells} | {build} | {r['gallery_mb']} / {r.get('ivfpq_mb', '-')} / "
              f"{r.get('hnsw_mb', '-')} / {r.get('ivf_mb', '-')} | {r.get('load_s', '-')} | "
              f"{r.get('enroll_append_s', '-')} | {r.get('enroll_rewrite_s', '-')} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _points(kind: str, args: argparse.Namespace) -> list[tuple[int, int | None]]:
    """(ef or nprobe, candidates re-ranked or None for the default) measured for ``kind``."""
    if kind == "hnsw":
        return [(p, None) for p in args.ef]
    if kind == "ivf":
        return [(p, None) for p in args.nprobe]
    return [(p, c) for p in args.nprobe for c in args.candidates]


def _at(kind: str, p: int, c: int | None) -> str:
    return f"{kind}@{p}" if c is None else f"{kind}@{p}/{c}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def enroll_times(g, manifest, embedding: np.ndarray) -> dict:
    """Save ``g``; time a load, one enroll (appended segment, then the identities `enroll` prints) and
    one with --compact (the full rewrite)."""
    from stream.recognize.gallery import Gallery, edit_gallery

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "g.npz"
        g.save(path)
        started = time.perf_counter()
        Gallery.load(path, manifest)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        with edit_gallery(path, manifest) as edit:
            edit.add("new-person", embedding[None])
        edit.identity_count()  # what `enroll` prints after: how many are enrolled now
        append_s = time.perf_counter() - started
        started = time.perf_counter()
        with edit_gallery(path, manifest, compact=True) as edit:
            edit.add("another-person", embedding[None])
        rewrite_s = time.perf_counter() - started
    return {"load_s": round(load_s, 2), "enroll_append_s": round(append_s, 2), "enroll_rewrite_s": round(rewrite_s, 2)}


if __name__ == "__main__":
    sys.exit(main())
