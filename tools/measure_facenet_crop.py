#!/usr/bin/env python
"""Choose the FaceNet model's crop and normalisation by verification accuracy (docs/models.md).

Installs four variants of the built-in ``facenet-casia`` into a scratch model store: each of the
two crops (``mtcnn-margin``: the MTCNN box + margin the weights were trained on, as a template;
``arcface``: InsightFace's tighter template scaled to 160) with each of the two normalisations
(``prewhiten``: per-image mean and std, the package's own example and davidsandberg/facenet's;
``fixed``: (x - 127.5) / 128, facenet-pytorch's). Then runs ``facestream eval`` on each dataset
with all four, the same faces and the same pairs, and prints accuracy, VAL@FAR, AUC per variant.

    python tools/measure_facenet_crop.py DATASET [DATASET ...] [--store DIR] [--pairs-per-fold N]

Needs ``pip install -e '.[facenet]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def install_variants(store_dir: Path) -> list[str]:
    from stream.models import facenet_casia as fc
    from stream.models.store import ModelStore

    store = ModelStore(store_dir)
    pb = fc.package_graph()
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        for norm in fc.NORMALIZATIONS:
            onnx_path = Path(tmp) / f"{norm}.onnx"
            digest = fc.convert(pb, onnx_path, norm)
            for template in fc.TEMPLATES:
                name = f"facenet-{norm}-{template}"
                manifest = fc.manifest_for(onnx_path, pb, digest, norm, template).model_copy(update={"name": name})
                if name not in store.installed_names():
                    store.install(manifest, onnx_path)
                names.append(name)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "facenet-variants")
    parser.add_argument("--pairs-per-fold", type=int, default=300)
    args = parser.parse_args()
    names = install_variants(args.store)
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(args.store)}
    for dataset in args.datasets:
        cmd = [sys.executable, "-m", "stream", "eval", str(dataset), "--json", "--seed", "0",
               "--pairs-per-fold", str(args.pairs_per_fold)] + [x for n in names for x in ("--model", n)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        print(f"{dataset.name}:")
        for r in json.loads(proc.stdout):
            print(f"  {r['model']:32} pairs {r['pairs']:5}  accuracy {r['accuracy']:.4f} +- {r['accuracy_se']:.4f}"
                  f"  VAL {r['val']:.4f} @ FAR {r['far']:.4f}  AUC {r['auc']:.4f}  threshold {r['threshold']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
