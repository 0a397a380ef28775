#!/usr/bin/env python
"""Per-face embedding time: our ONNX Runtime engine (batch 1, 8, 32) vs dlib's compute_face_descriptor.

Same 150x150 chips for both (made by dlib's own detector, landmarks and get_face_chip from the
photos in tests/media), measured side by side in one run; rounds alternate between the
engines so machine noise hits both alike. Report the ratio, not the absolute numbers.

    python tools/bench_embedding.py [--seconds 3] [--rounds 3] [--threads 0 1] [--json out.json]
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


def dlib_chips():
    import dlib

    from stream.models.dlib_resnet import package_weights

    models = package_weights().parent
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    chips = []
    for name in PHOTOS:
        img = dlib.load_rgb_image(str(MEDIA / name))
        chips += [dlib.get_face_chip(img, sp(img, r), size=150, padding=0.25) for r in det(img, 1)]
    return np.stack(chips), dlib.face_recognition_model_v1(str(package_weights()))


def per_face_ms(fn, faces_per_call: int, seconds: float) -> float:
    fn()  # warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += faces_per_call
    return (time.perf_counter() - t0) / n * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    ap.add_argument("--threads", type=int, nargs="+", default=[0, 1], help="ORT intra-op threads (0 = all cores)")
    ap.add_argument("--model", default=None, help="facestream model (default: the default model)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.models.store import ModelStore

    model = ModelStore().get(args.model) if args.model else ModelStore().get()
    chips_rgb, net = dlib_chips()
    chips_bgr = np.ascontiguousarray(chips_rgb[..., ::-1])
    batch = {b: np.concatenate([chips_bgr] * (b // len(chips_bgr) + 1))[:b] for b in (1, 8, 32)}
    engines = {t: OnnxRuntimeEngine(model.manifest, model.onnx_path, max_batch=32, intra_threads=t, spin=True).load()
               for t in args.threads}
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        results.setdefault("dlib", []).append(
            per_face_ms(lambda: [net.compute_face_descriptor(c) for c in chips_rgb], len(chips_rgb), args.seconds))
        for t, engine in engines.items():
            for b, crops in batch.items():
                results.setdefault(f"ort threads={t or os.cpu_count()} batch={b}", []).append(
                    per_face_ms(lambda e=engine, c=crops: e.embed(c), b, args.seconds))
    med = {k: statistics.median(v) for k, v in results.items()}
    ref = med["dlib"]
    print(f"model {model.name}, {len(chips_rgb)} real chips, {os.cpu_count()} CPUs, {args.rounds} rounds x "
          f"{args.seconds:.0f} s (medians)")
    print(f"{'':32}{'ms/face':>10}{'faces/s':>10}{'x dlib':>9}")
    for k, v in med.items():
        print(f"{k:32}{v:>10.2f}{1e3 / v:>10.1f}{ref / v:>9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"median_ms_per_face": med, "rounds": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
