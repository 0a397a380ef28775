"""`facestream models ...`: list, install and remove embedding models (plus import and quantize)."""

from __future__ import annotations

import argparse
import json

from stream.models.store import BUILTINS, DEFAULT_MODEL, ModelStore


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list, install, import and quantize embedding models")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True

    ls = sub.add_parser("list", help="show installed and built-in models")
    ls.add_argument("--json", action="store_true", help="print a JSON list of {name, default, installed, ...}")
    ls.set_defaults(func=list_models)

    inst = sub.add_parser("install", help="build a built-in model now (otherwise it is built on first use)")
    inst.add_argument("name", nargs="?", default=DEFAULT_MODEL, help=f"built-in model (default {DEFAULT_MODEL})")
    inst.add_argument("--force", action="store_true", help="rebuild even if installed")
    inst.set_defaults(func=install_model)

    rm = sub.add_parser("remove", help="delete an installed model")
    rm.add_argument("name")
    rm.set_defaults(func=remove_model)

    from stream.cli import facenet_cmd, quantize_cmd

    facenet_cmd.register_models(sub)
    quantize_cmd.register_models(sub)


def list_models(args: argparse.Namespace) -> int:
    store = ModelStore()
    rows = []
    for name in store.available_names():
        installed = name in store.installed_names()
        row = {"name": name, "default": name == DEFAULT_MODEL, "installed": installed, "builtin": name in BUILTINS}
        if installed:
            m = store.get(name, verify=False).manifest
            row.update(embedding_size=m.embedding_size, input=[m.input.width, m.input.height],
                       metric=m.metric, threshold=m.threshold, precision=m.precision, sha256=m.sha256,
                       source=m.source)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"models in {store.models_dir}:")
    for r in rows:
        mark = "*" if r["default"] else " "
        if r["installed"]:
            print(f" {mark} {r['name']:<28} {r['embedding_size']:>4}-D  {r['input'][0]}x{r['input'][1]}  "
                  f"{r['metric']} <= {r['threshold']}  {r['precision']}")
        else:
            print(f" {mark} {r['name']:<28} (built-in, built on first use)")
    return 0


def install_model(args: argparse.Namespace) -> int:
    model = ModelStore().build_builtin(args.name, force=args.force)
    print(f"installed {model.name} at {model.onnx_path} (sha256 {model.manifest.sha256})")
    return 0


def remove_model(args: argparse.Namespace) -> int:
    ModelStore().remove(args.name)
    print(f"removed {args.name}")
    return 0
