"""`facestream embed IMAGE...`: detect, align and embed faces in photos; the quickest model check."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from stream.cli.common import add_model_arg
from stream.errors import FacestreamError
from stream.models.store import load_model

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("embed", help="embed the faces in images",
                              description="Detect (MediaPipe), align and embed every face in each image.")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    add_model_arg(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image: {image, faces: [{bbox, score, embedding}]}")
    p.add_argument("--detector", choices=["short", "full"], default="full",
                   help="BlazeFace model for the scan (large photos are scanned in tiles either way)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.detect import DetectorConfig, FaceDetector
    from stream.images import read_image
    from stream.photos import PhotoEmbedder

    model = load_model(args.model)
    failures = 0
    with FaceDetector(DetectorConfig(model=args.detector)) as detector, PhotoEmbedder(model, detector) as photos:
        for path in args.images:
            try:
                image = read_image(path)
            except FacestreamError as exc:
                print(f"facestream: {exc}", file=sys.stderr)
                failures += 1
                continue
            faces = photos.faces(image)
            embeddings = photos.embed(faces)
            record = {
                "image": str(path),
                "model": model.name,
                "faces": [
                    {"bbox": [round(float(v), 1) for v in box], "score": round(float(score), 4),
                     "embedding": [round(float(v), 6) for v in emb]}
                    for box, score, emb in zip(faces.xyxy, faces.score, embeddings)
                ],
            }
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                print(f"{path}: {len(faces)} face(s)")
                for face in record["faces"]:
                    print(f"  bbox {face['bbox']} score {face['score']:.2f} embedding[{len(face['embedding'])}]")
    return 1 if failures else 0
