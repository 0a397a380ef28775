"""`facestream models quantize NAME --precision fp16|int8 [--calib DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register_models(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("quantize", help="make an fp16 or int8 variant of a model (for ONNX Runtime and TensorRT)",
                       description="Create model NAME-fp16 (weights and compute in float16, float32 I/O) or "
                                   "NAME-int8 (static Q/DQ, calibrated on aligned faces from --calib DIR). The "
                                   "variant shares the base model's embedding space: galleries stay valid.")
    q.add_argument("name", help="installed fp32 model, e.g. dlib-resnet-v1")
    q.add_argument("--precision", required=True, choices=["fp16", "int8"])
    q.add_argument("--calib", type=Path, help="folder of face photos for int8 calibration (searched recursively)")
    q.add_argument("--max-calib", type=int, default=200, help="most faces to calibrate on")
    q.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax",
                   help="activation range calibration (default minmax: best cosine on our tests)")
    q.add_argument("--target", choices=["cpu", "tensorrt"], default="cpu",
                   help="int8 scheme: cpu = uint8 activations for ONNX Runtime (NAME-int8); tensorrt = symmetric "
                        "int8, the only Q/DQ TensorRT accepts (NAME-int8-trt)")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.models.quantize import quantize
    from stream.photos import calibration

    faces = calibration(args.calib, args.max_calib) if args.calib is not None else None
    model = quantize(args.name, args.precision, faces, method=args.method, target=args.target)
    size_mb = model.onnx_path.stat().st_size / 1e6
    print(f"installed {model.name} ({model.manifest.precision}, {size_mb:.1f} MB, sha256 {model.manifest.sha256})")
    return 0
