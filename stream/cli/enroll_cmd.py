"""`facestream enroll`: add people to a gallery from photos (one face per photo)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stream.cli.common import add_model_arg, cpu_engine, load_model
from stream.errors import FacestreamError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "enroll", help="add people to a gallery",
        description="Enroll photos into a gallery: `--name NAME IMAGE...` for one person, or a DIR with one "
                    "sub-folder per person. Photos with no face or several faces are reported and skipped. "
                    "The gallery file is replaced atomically, so a failed enrollment leaves it as it was.",
    )
    p.add_argument("--gallery", required=True, type=Path, help="gallery file (.npz); created if absent")
    p.add_argument("--name", help="identity for the IMAGEs (omit when enrolling a DIR of sub-folders)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE|DIR")
    add_model_arg(p)
    p.set_defaults(func=run)


def collect(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(identity, image) pairs from the command line; every path is checked before any work."""
    pairs: list[tuple[str, Path]] = []
    if args.name:
        for path in args.inputs:
            if path.is_dir():
                raise FacestreamError(f"{path}: a directory; with --name, give image files")
            pairs.append((args.name, path))
        return pairs
    for root in args.inputs:
        if not root.exists():
            raise FacestreamError(f"{root}: not found")
        if not root.is_dir():
            raise FacestreamError(f"{root}: give --name NAME for single images, or a directory of per-person folders")
        people = sorted(p for p in root.iterdir() if p.is_dir())
        if not people:
            raise FacestreamError(f"{root}: no per-person sub-folders found")
        for person in people:
            images = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                log.warning("%s: no images", person)
            pairs.extend((person.name, img) for img in images)
    return pairs


def run(args: argparse.Namespace) -> int:
    from stream.align import FaceAligner, read_image
    from stream.detect import FaceDetector
    from stream.recognize.gallery import Gallery

    pairs = collect(args)
    images = [(name, path, read_image(path)) for name, path in pairs]  # all decode, or nothing is written
    model = load_model(args.model)
    gallery = Gallery.load(args.gallery, model.manifest) if args.gallery.exists() else Gallery.new(model.manifest)
    aligner = FaceAligner.for_model(model.manifest)
    added: dict[str, int] = {}
    skipped = 0
    with FaceDetector() as detector, cpu_engine(model) as engine:
        for name, path, image in images:
            faces = detector.detect(image)
            if len(faces) != 1:
                why = "no face found" if not len(faces) else f"{len(faces)} faces found (need exactly one)"
                print(f"facestream: {path}: {why}; skipped", file=sys.stderr)
                skipped += 1
                continue
            embedding = engine.embed(aligner.align(image, faces).crops)
            gallery.add(name, embedding, [str(path)])
            added[name] = added.get(name, 0) + 1
    if not added:
        raise FacestreamError(f"{args.gallery}: nothing enrolled ({skipped} image(s) skipped); gallery unchanged")
    gallery.save(args.gallery)
    people = ", ".join(f"{n} ({c})" for n, c in sorted(added.items()))
    print(f"{args.gallery}: enrolled {sum(added.values())} image(s): {people}; skipped {skipped}; "
          f"gallery now has {len(gallery.identities())} identities")
    return 0
