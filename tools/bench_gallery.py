#!/usr/bin/env python
"""Gallery matching at scale: publisher ms a frame with galleries of 4, 100k and 1M entries, side by side.

What is timed is the publisher's own work per frame, ``RecognitionStage.process``, replayed over
the Hamilton clip's real faces: every face of every frame is detected, aligned and embedded once
up front (MediaPipe + the default model, on the CPU), given a track id by a tiny IoU matcher, and
then fed frame by frame to a stage holding each gallery. Every face is treated as embedded on
every frame (the live pipeline re-embeds confident tracks only every ``reembed_every`` frames), so
the figures are an upper bound of the matching cost. Also measured: the index's top-1 agreement
with exact search, its build time, the memory of each gallery, loading a 1M gallery, and
enrolling one photo into it (append) vs the full rewrite.

The 4-entry gallery is the tests/media photos. The large ones add synthetic entries whose
distances look like real ones: 90% a "crowd" drawn from a Gaussian with the mean and covariance of
the clip's real embeddings, widened so two crowd entries lie ~0.9 apart (dlib's different-people
distance) and scaled to the model's typical norm; 10% look-alikes, real clip embeddings moved
0.45-0.7 away (just past and under the 0.6 threshold), so the nearest entry often is a hard one.

    python tools/bench_gallery.py                # 4, 100k, 1M
    python tools/bench_gallery.py --sizes 4 100000 --json out.json
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


def synthetic(real: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` entries distributed like other people's embeddings near the real ones (see the module doc)."""
    rng = np.random.default_rng(seed)
    mu = real.mean(0)
    norm = float(np.linalg.norm(real, axis=1).mean())
    cov = np.cov(real.T) + 1e-4 * np.eye(real.shape[1])
    chol = np.linalg.cholesky(cov)
    crowd_n = n - n // 10
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


def publisher_ms(manifest, gallery, frames: list[dict], repeats: int = 1) -> float:
    from stream.faces import Faces
    from stream.recognize.stage import FrameResult, RecognitionStage
    from stream.recognize.voting import VotingConfig

    best = float("inf")
    for _ in range(repeats):
        stage = RecognitionStage(manifest, gallery, VotingConfig())
        started = time.perf_counter()
        for i, f in enumerate(frames):
            faces = Faces(f["xyxy"], f["scores"], f["kps"], track_id=f["ids"],
                          embeddings=f["emb"] if len(f["emb"]) else None, layout=f["layout"])
            stage.process(FrameResult("clip", i, i / 30, 0.0, faces, np.ones(len(f["ids"]), bool)))
        best = min(best, (time.perf_counter() - started) * 1000 / len(frames))
    return best


def agreement(exact_gallery, index_gallery, queries: np.ndarray) -> float:
    en, ed = exact_gallery.match(queries)
    xn, xd = index_gallery.match(queries)
    same = [a == b or abs(float(p) - float(q)) < 1e-5 for a, b, p, q in zip(en, xn, ed, xd)]
    return sum(same) / len(same)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="BLAS/faiss threads (0: as installed)")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[128, 384],
                    help="index lists searched per query, each measured (the first is the config default)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import faiss

    from stream.images import read_image
    from stream.models.store import ModelStore
    from stream.photos import PhotoEmbedder
    from stream.recognize.gallery import Gallery
    from stream.recognize.gallery_index import GallerySearchConfig, build_index

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    model = ModelStore().get()
    manifest = model.manifest
    t0 = time.perf_counter()
    frames = clip_frames(model, MEDIA / "short_hamilton_clip.mp4")
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
            g.add("synthetic", synthetic(real, extra, seed=size))
            g.names[len(base):] = [f"person-{i:07d}" for i in range(extra)]
        before = rss_mb()
        g.search()
        row = {"entries": len(g), "gallery_mb": round(g.embeddings.nbytes / 2**20, 1),
               "exact_ms_per_frame": round(publisher_ms(manifest, g, frames, args.repeats), 3)}
        row["exact_search_extra_mb"] = round(rss_mb() - before, 1)
        if len(g) >= 1000:
            config = GallerySearchConfig(index="faiss")
            started = time.perf_counter()
            index = build_index(g.search().exact.matrix, config.nprobe)
            row["index_build_s"] = round(time.perf_counter() - started, 2)
            row["index_mb"] = round(faiss.serialize_index(index).nbytes / 2**20, 1)
            indexed = Gallery(g.model, g.embedding_space, g.metric, g.dim, g.names, g.embeddings, g.sources)
            indexed.use_index(index, len(g))
            for nprobe in args.nprobe:
                index.nprobe = nprobe
                row[f"index_ms_per_frame@{nprobe}"] = round(publisher_ms(manifest, indexed, frames, args.repeats), 3)
                row[f"top1_agreement@{nprobe}"] = round(agreement(g, indexed, queries), 5)
            row["agreement_queries"] = len(queries)
        if size >= 100_000:
            row.update(enroll_times(g, manifest, real[0]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    probes = " | ".join(f"index@{p} ms/frame | top-1 agree@{p}" for p in args.nprobe)
    print(f"| entries | exact ms/frame | {probes} | index build s | gallery MB | index MB |"
          " load s | enroll (append) s | enroll (rewrite) s |")
    print("|---" * (9 + 2 * len(args.nprobe)) + "|")
    for r in rows:
        cells = " | ".join(f"{r.get(f'index_ms_per_frame@{p}', '-')} | {r.get(f'top1_agreement@{p}', '-')}"
                           for p in args.nprobe)
        print(f"| {r['entries']} | {r['exact_ms_per_frame']} | {cells} | {r.get('index_build_s', '-')} | "
              f"{r['gallery_mb']} | {r.get('index_mb', '-')} | {r.get('load_s', '-')} | "
              f"{r.get('enroll_append_s', '-')} | {r.get('enroll_rewrite_s', '-')} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


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
