#!/usr/bin/env python
"""INT8 and FP16 variants vs FP32 on this CPU: speed, embedding agreement, identity decisions.

Calibration uses faces from the clip in tests/media (every 5th frame); agreement is measured
on the photos, which calibration never saw. Speed is measured side by side in one run (rounds
alternate between the models), so read the ratios, not the absolute numbers.

    python tools/bench_int8.py [--seconds 2] [--rounds 3] [--threads 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
# (photo, face index from the left) -> person
FACES = {("obama.jpg", 0): "obama", ("obama2.jpg", 0): "obama", ("two_people.jpg", 0): "obama",
         ("biden.jpg", 0): "biden", ("two_people.jpg", 1): "biden",
         ("lin-manuel-miranda.png", 0): "lin", ("alex-lacamoire.png", 0): "alex"}


def photo_crops(manifest) -> tuple[np.ndarray, list[str]]:
    from stream.align import FaceAligner
    from stream.detect.blazeface.graph import MediaPipeFaceDetector
    from stream.detect.config import DetectorConfig
    from stream.images import read_image

    aligner = FaceAligner.for_model(manifest)
    crops, people = [], []
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0)) as det:
        for (photo, k), person in FACES.items():
            image = read_image(MEDIA / photo)
            faces = det.detect(image)
            faces = faces[np.argsort(faces.xyxy[:, 0])]
            crops.append(aligner.align(image, faces[[k]]).crops[0])
            people.append(person)
    return np.stack(crops), people


def decisions(embeddings: np.ndarray, people: list[str], manifest) -> tuple[list[str], float]:
    """Leave-one-out nearest neighbour (name or 'unknown' past the threshold) and accuracy."""
    d = manifest.distances(embeddings, embeddings)
    np.fill_diagonal(d, np.inf)
    out = []
    for i in range(len(people)):
        j = int(d[i].argmin())
        alone = people.count(people[i]) == 1
        out.append(people[j] if d[i, j] <= manifest.threshold else "unknown")
        if alone and out[-1] == "unknown":
            out[-1] = "unknown (correct: only photo)"
    correct = sum(o == p or (o.startswith("unknown") and people.count(p) == 1) for o, p in zip(out, people))
    return out, correct / len(people)


def speed(engine, crops: np.ndarray, batch: int, seconds: float) -> float:
    data = np.concatenate([crops] * (batch // len(crops) + 1))[:batch]
    engine.embed(data)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        engine.embed(data)
        n += batch
    return (time.perf_counter() - t0) / n * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = all cores)")
    ap.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.models.quantize import quantize
    from stream.models.store import ModelStore
    from stream.photos import calibration

    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp) / "engines")
        base = store.get()
        calib = Path(tmp) / "calib"
        calib.mkdir()
        shutil.copy(MEDIA / "short_hamilton_clip.mp4", calib / "clip.mp4")  # temp dir, never the repo
        variants = {"fp32": base,
                    "fp16": quantize(base.name, "fp16", store=store),
                    "int8": quantize(base.name, "int8", calibration(calib), store=store, method=args.method),
                    "int8-trt": quantize(base.name, "int8", calibration(calib), store=store, method=args.method,
                                         target="tensorrt")}
        crops, people = photo_crops(base.manifest)
        engines = {k: OnnxRuntimeEngine(m.manifest, m.onnx_path, max_batch=32, intra_threads=args.threads,
                                        spin=True).load() for k, m in variants.items()}
        emb = {k: e.embed(crops) for k, e in engines.items()}
        timings: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for k, engine in engines.items():
                for b in (1, 32):
                    timings.setdefault(f"{k} batch={b}", []).append(speed(engine, crops, b, args.seconds))
    med = {k: statistics.median(v) for k, v in timings.items()}
    ref = emb["fp32"] / np.linalg.norm(emb["fp32"], axis=1, keepdims=True)
    report: dict = {"ms_per_face": med, "agreement": {}, "decisions": {}}
    print(f"{len(crops)} held-out photo faces, {os.cpu_count()} CPUs, ORT threads {args.threads or 'all'}, "
          f"{args.rounds} rounds (medians)\n")
    print(f"{'':18}{'ms/face':>9}{'x fp32':>8}")
    for k, v in med.items():
        base_ms = med[f"fp32 batch={k.split('=')[1]}"]
        print(f"{k:18}{v:>9.2f}{base_ms / v:>8.2f}")
    print(f"\n{'':9}{'min cos':>9}{'mean cos':>10}{'max |diff|':>11}{'decisions':>11}  same as fp32")
    base_dec, _ = decisions(emb["fp32"], people, base.manifest)
    for k, e in emb.items():
        cos = (e / np.linalg.norm(e, axis=1, keepdims=True) * ref).sum(1)
        dec, acc = decisions(e, people, base.manifest)
        report["agreement"][k] = {"min_cos": float(cos.min()), "mean_cos": float(cos.mean()),
                                  "max_abs_diff": float(np.abs(e - emb["fp32"]).max())}
        report["decisions"][k] = {"accuracy": acc, "same_as_fp32": dec == base_dec, "decisions": dec}
        print(f"{k:9}{cos.min():>9.5f}{cos.mean():>10.5f}{np.abs(e - emb['fp32']).max():>11.4f}{acc:>11.0%}  "
              f"{dec == base_dec}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
