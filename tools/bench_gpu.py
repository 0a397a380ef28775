#!/usr/bin/env python
"""GPU benchmark: faces/s and latency per batch for TensorRT, ONNX Runtime (CPU) and PyTorch (GPU).

Side by side in one run at batch 1, 8, 32, 128 on real aligned crops from tests/media (tiled
to the batch size). A backend that cannot run here is skipped with a line saying why.

    python tools/bench_gpu.py [--model NAME] [--batches 1 8 32 128] [--seconds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]


def measure(fn, batch: int, seconds: float) -> dict:
    fn()
    lat = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    lat_ms = np.array(lat) * 1e3
    return {"faces_per_s": round(batch * len(lat) / (time.perf_counter() - t0), 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 3), "p95_ms": round(float(np.percentile(lat_ms, 95)), 3)}


def torch_runner(model, max_batch: int):
    """The same ONNX graph in PyTorch on the GPU, via onnx2torch when installed (else skipped)."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA GPU")
    try:
        from onnx2torch import convert
    except ImportError:
        raise RuntimeError("onnx2torch not installed (pip install onnx2torch)") from None
    from stream.models.preprocess import to_input_tensor

    net = convert(str(model.onnx_path)).cuda().eval()

    def run(crops):
        with torch.inference_mode():
            x = torch.from_numpy(to_input_tensor(crops, model.manifest.input)).cuda(non_blocking=True)
            return net(x).float().cpu().numpy()

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.inference.select import EngineConfig
    from stream.models.store import ModelStore
    from stream.photos import load_face_crops

    model = ModelStore().get(args.model) if args.model else ModelStore().get()
    base = load_face_crops([MEDIA / p for p in PHOTOS], model.manifest)
    max_batch = max(args.batches)
    runners: dict[str, object] = {}
    try:
        from stream.inference.tensorrt import TensorRTEngine

        engine = TensorRTEngine.for_model(model, EngineConfig(kind="tensorrt", max_batch=max_batch)).load()
        runners["tensorrt"] = engine.embed
    except Exception as exc:  # report and go on: this is a benchmark, not the product
        print(f"tensorrt: skipped ({exc})")
    runners["onnxruntime-cpu"] = OnnxRuntimeEngine(model.manifest, model.onnx_path, max_batch=max_batch,
                                                   spin=True).load().embed
    try:
        runners["pytorch-gpu"] = torch_runner(model, max_batch)
    except Exception as exc:
        print(f"pytorch-gpu: skipped ({exc})")
    results: dict[str, dict] = {}
    for name, fn in runners.items():
        for b in args.batches:
            crops = np.concatenate([base] * (b // len(base) + 1))[:b]
            results[f"{name} b{b}"] = measure(lambda fn=fn, crops=crops: fn(crops), b, args.seconds)
            print(f"{name:16} batch {b:4}: {results[f'{name} b{b}']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": model.name, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
