"""`facestream engine build|check|info`: the TensorRT engine on an NVIDIA GPU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stream.errors import ModelError
from stream.models.store import InstalledModel, load_model


def add_model_or_onnx_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="NAME|FILE.onnx",
                        help="installed model name, or the ONNX file of one (default: the default model)")


def resolve_model(arg: str | None) -> InstalledModel:
    """A model name, or an ONNX file whose bytes are an installed model's: its manifest gives the input
    size, tensor names and embedding size the engine needs, which a bare ONNX does not carry."""
    if arg is None or not arg.lower().endswith(".onnx"):
        return load_model(arg)
    from stream.models.manifest import sha256_file
    from stream.models.store import ModelStore

    path = Path(arg)
    if not path.is_file():
        raise ModelError(f"{arg}: no such ONNX file")
    digest = sha256_file(path)
    store = ModelStore()
    for name in store.installed_names():
        model = store.get(name, verify=False)
        if model.manifest.sha256 == digest:
            return model
    raise ModelError(f"{arg}: not the ONNX of an installed model (sha256 {digest[:12]}); install or import it "
                     "first (`facestream models ...`) so its input size and tensor names are known")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("engine", help="build and check TensorRT engines (GPU)")
    sub = p.add_subparsers(dest="engine_command", metavar="ACTION")
    sub.required = True

    b = sub.add_parser("build", help="build a TensorRT engine for a model on this GPU")
    add_model_or_onnx_arg(b)
    b.add_argument("--min-batch", type=int, default=1)
    b.add_argument("--opt-batch", type=int, default=16)
    b.add_argument("--max-batch", type=int, default=32)
    b.add_argument("--workspace-mb", type=int, default=1024)
    b.add_argument("--fp16", action="store_true", help="TensorRT 10 only: FP16 builder flag on an fp32 model")
    b.add_argument("--device", type=int, default=0)
    b.set_defaults(func=build)

    c = sub.add_parser("check", help="compare TensorRT and ONNX Runtime embeddings on real face crops")
    add_model_or_onnx_arg(c)
    c.add_argument("--images", type=Path, help="folder of face photos (default: the built-in demo photo)")
    c.add_argument("--max-batch", type=int, default=32)
    c.set_defaults(func=check)

    i = sub.add_parser("info", help="what is available here: TensorRT, pycuda, GPU, built engines")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=info)


def build(args: argparse.Namespace) -> int:
    from stream.inference.sidecar import BatchProfile
    from stream.inference.trt_build import build_engine, require_gpu_stack, runtime_facts
    from stream.models.store import ModelStore

    require_gpu_stack("facestream engine build")
    model = resolve_model(args.model)
    import pycuda.driver as cuda

    cuda.init()
    ctx = cuda.Device(args.device).retain_primary_context()
    ctx.push()
    try:
        path = build_engine(model, ModelStore().root, BatchProfile(min=args.min_batch, opt=args.opt_batch,
                                                                     max=args.max_batch),
                            workspace_mb=args.workspace_mb, runtime=runtime_facts(args.device), fp16_flag=args.fp16)
    finally:
        ctx.pop()
        ctx.detach()
    print(f"built {path}")
    return 0


def check(args: argparse.Namespace) -> int:
    import numpy as np

    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.inference.select import EngineConfig
    from stream.inference.tensorrt import TensorRTEngine
    from stream.inference.trt_build import require_gpu_stack
    from stream.photos import load_face_crops

    require_gpu_stack("facestream engine check")
    model = resolve_model(args.model)
    if args.images:
        photos = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    else:
        from stream.demo import demo_photo

        photos = [demo_photo()]
    crops = load_face_crops(photos, model.manifest)
    cfg = EngineConfig(kind="tensorrt", max_batch=args.max_batch)
    with TensorRTEngine.for_model(model, cfg) as trt_engine, OnnxRuntimeEngine(model.manifest, model.onnx_path) as ort:
        a, b = trt_engine.embed(crops), ort.embed(crops)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    diff = float(np.abs(a - b).max())
    ok = cos.min() >= (0.999 if model.manifest.precision != "int8" else 0.99)
    print(f"{model.name} ({model.manifest.precision}) on {len(crops)} faces: max abs diff {diff:.2e}, "
          f"cosine min {cos.min():.6f} mean {cos.mean():.6f}: {'ok' if ok else 'TOO FAR from ONNX Runtime'}")
    return 0 if ok else 1


def info(args: argparse.Namespace) -> int:
    from stream.inference.select import tensorrt_available
    from stream.inference.trt_build import missing_gpu_stack
    from stream.models.store import ModelStore

    ok, reason = tensorrt_available()
    engines = sorted(str(p.name) for p in ModelStore().root.glob("*.engine"))
    data = {"tensorrt_usable": ok, "reason": reason, "missing": missing_gpu_stack(), "engines": engines}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"TensorRT path: {'usable' if ok else 'not usable'} ({reason})")
        print(f"built engines: {', '.join(engines) or 'none'}")
    return 0
