"""`facestream enroll`: add people to a gallery from photos (one face per photo), or from a folder of
already-aligned crops (a `facestream cluster` output folder or saved tracks), embedded as they are;
`--remove NAME` deletes a person.

The slow part (detecting, embedding) runs before the gallery's lock is taken; the lock then
covers only load-add-save, so concurrent enrolls wait on each other for milliseconds, and none
loses another's names. A running pipeline picks the new file up within a second.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stream.cli.common import add_model_arg
from stream.errors import FacestreamError
from stream.inference.select import cpu_engine
from stream.models.store import load_model
from stream.recognize.names import check_name, show

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "enroll", help="add people to a gallery",
        description="Enroll photos into a gallery: `--name NAME IMAGE...` for one person, or a DIR with one "
                    "sub-folder per person. `--name NAME CLUSTER_DIR` enrolls a folder of aligned crops (a "
                    "`facestream cluster` folder, saved tracks, or PNGs of the model's input size) without "
                    "re-detecting. Photos with no face or several faces are reported and skipped. "
                    "`--remove NAME` deletes a person. The gallery file is locked while it is changed and "
                    "replaced atomically, so concurrent enrolls all land and a failed one leaves it as it "
                    "was; a running `facestream run --gallery` picks the change up within a second.",
    )
    p.add_argument("--gallery", required=True, type=Path, help="gallery file (.npz); created if absent")
    p.add_argument("--name", help="identity for the IMAGEs (omit when enrolling a DIR of sub-folders)")
    p.add_argument("--remove", action="append", default=[], metavar="NAME",
                   help="delete this person from the gallery, with the photos added on the web page and the "
                        "strangers named as them (repeatable; give no IMAGE|DIR)")
    p.add_argument("--unknowns", type=Path, metavar="DIR",
                   help="with --remove: the saved unknown tracks folder (run --save-unknowns DIR) whose "
                        ".named/ strangers to delete too (found from the gallery's own paths without it)")
    p.add_argument("--compact", action="store_true",
                   help="merge the enrolls appended since the last rewrite into the gallery file (alone, or "
                        "after enrolling)")
    p.add_argument("inputs", nargs="*", type=Path, metavar="IMAGE|DIR")
    add_model_arg(p)
    p.set_defaults(func=run)


def collect(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(identity, image) pairs from the command line; every path is checked before any work."""
    pairs: list[tuple[str, Path]] = []
    if args.name:
        for path in args.inputs:
            if path.is_dir():
                raise FacestreamError(f"{path}: a directory of photos; with --name, give image files or a folder "
                                      "of aligned crops (a `facestream cluster` folder)")
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
            name = check_name(person.name, "folder name", shown_as=show(str(person)))
            images = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                log.warning("%s: no images", person)
            pairs.extend((name, img) for img in images)
    return pairs


def aligned_crops(folder: Path, size: tuple[int, int]) -> list[Path] | None:
    """The crops of a folder of aligned faces, or None when it is not one.

    A folder holding ``track.json`` files (itself or one or two levels down: saved tracks, a
    cluster) gives their ``crop-*.png``; otherwise a folder whose images all have the model's
    input size (w, h) is taken as crops. Anything else is photos to detect in.
    """
    from stream.cluster.saved_tracks import read_tracks

    if not folder.is_dir():
        return None
    tracks = read_tracks(folder)
    if tracks:
        return [p for t in tracks for p in t.crops]
    from stream.images import image_size

    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        return None
    for path in images:  # the headers say the sizes: nothing is decoded to decide
        try:
            header = image_size(path)
        except FacestreamError:
            return None
        if (header.width, header.height) != size:
            return None
    return images


def run(args: argparse.Namespace) -> int:
    if args.name is not None:  # before any photo is read: the name is the gallery's key and a folder
        args.name = check_name(args.name)
    if args.unknowns is not None and not args.remove:
        raise FacestreamError("--unknowns goes with --remove")
    if args.compact and not (args.inputs or args.remove or args.name):
        return _run_compact(args)
    if args.remove:
        if args.inputs or args.name:
            raise FacestreamError("--remove takes no --name or IMAGE|DIR: enroll and remove in separate commands")
        return _run_remove(args)
    if not args.inputs:
        raise FacestreamError("nothing to enroll: give IMAGE|DIR (or --remove NAME to delete a person)")
    if args.name and any(p.is_dir() for p in args.inputs):
        return _run_crops(args)
    return _run_photos(args)


def _run_remove(args: argparse.Namespace) -> int:
    from stream.recognize.forget import forget_people
    from stream.recognize.gallery import Gallery

    if not args.gallery.exists():
        raise FacestreamError(f"{args.gallery}: gallery not found")
    # No model needed: removing rows keeps the gallery's embedding space as it is.
    forgotten = forget_people(args.gallery, args.remove, args.unknowns)
    print(f"{args.gallery}: {'; '.join(f.message() for f in forgotten)}; "
          f"gallery now has {len(Gallery.load(args.gallery).identities())} identities")
    return 0


def _run_compact(args: argparse.Namespace) -> int:
    """Enrolls are appended beside the gallery (a 1M-entry file is not rewritten per photo); this
    merges them into it. A removal, and every 64th append, does the same on its own."""
    from stream.recognize.gallery import edit_gallery, list_segments

    if not args.gallery.exists():
        raise FacestreamError(f"{args.gallery}: gallery not found")
    merged = len(list_segments(args.gallery))
    with edit_gallery(args.gallery, None, create=False, compact=True) as gallery:
        pass
    print(f"{args.gallery}: compacted ({merged} appended segment(s) merged); {len(gallery)} embeddings of "
          f"{len(gallery.identities())} identities")
    return 0


def _check_existing(path: Path, manifest) -> None:
    """Refuse another model's gallery before the slow work, not after (the lock re-checks it)."""
    from stream.recognize.gallery import Gallery

    if path.exists():
        Gallery.for_append(path, manifest)  # the header says the model: no need to read 1M embeddings


def _run_crops(args: argparse.Namespace) -> int:
    """--name NAME CLUSTER_DIR...: the crops were aligned by the run that saved them; embed them as they are."""
    import numpy as np

    from stream.images import read_image
    from stream.recognize.gallery import edit_gallery

    model = load_model(args.model)
    size = (model.manifest.input.width, model.manifest.input.height)
    paths: list[Path] = []
    for folder in args.inputs:
        found = aligned_crops(folder, size)
        if found is None:
            raise FacestreamError(f"{folder}: not a folder of aligned crops ({size[0]}x{size[1]} PNGs or saved tracks "
                                  "with track.json); with --name, give image files or such a folder")
        if not found:
            raise FacestreamError(f"{folder}: saved tracks without crops; nothing to enroll")
        paths.extend(found)
    crops = [read_image(p) for p in paths]
    for path, crop in zip(paths, crops):
        if (crop.shape[1], crop.shape[0]) != size:
            raise FacestreamError(f"{path}: a {crop.shape[1]}x{crop.shape[0]} crop; model {model.name} needs "
                                  f"{size[0]}x{size[1]} (saved with another model?)")
    _check_existing(args.gallery, model.manifest)
    with cpu_engine(model) as engine:
        embeddings = engine.embed(np.stack(crops))
    with edit_gallery(args.gallery, model.manifest, compact=args.compact) as gallery:
        gallery.add(args.name, embeddings, [str(p) for p in paths])
    print(f"{args.gallery}: enrolled {len(paths)} aligned crop(s) as {args.name}; "
          f"gallery now has {gallery.identity_count()} identities")
    return 0


def _run_photos(args: argparse.Namespace) -> int:
    from stream.images import check_image, read_image
    from stream.photos import PhotoEmbedder, one_face
    from stream.recognize.gallery import edit_gallery

    pairs = collect(args)
    for _, path in pairs:  # every header checked before the models load; the gallery is written only at the end
        check_image(path)
    model = load_model(args.model)
    _check_existing(args.gallery, model.manifest)
    added: dict[str, int] = {}
    enrolled: list[tuple[str, object, Path]] = []
    skipped = 0
    with PhotoEmbedder(model) as photos:
        for name, path in pairs:  # one decoded photo in memory at a time
            faces = photos.faces(read_image(path))
            why = one_face(faces)
            if why is not None:
                why = why if not len(faces) else f"{why} (need exactly one)"
                print(f"facestream: {path}: {why}; skipped", file=sys.stderr)
                skipped += 1
                continue
            enrolled.append((name, photos.embed(faces), path))
            added[name] = added.get(name, 0) + 1
    if not added:
        raise FacestreamError(f"{args.gallery}: nothing enrolled ({skipped} image(s) skipped); gallery unchanged")
    with edit_gallery(args.gallery, model.manifest, compact=args.compact) as gallery:
        for name, embedding, path in enrolled:
            gallery.add(name, embedding, [str(path)])
    people = ", ".join(f"{n} ({c})" for n, c in sorted(added.items()))
    print(f"{args.gallery}: enrolled {sum(added.values())} image(s): {people}; skipped {skipped}; "
          f"gallery now has {gallery.identity_count()} identities")
    return 0
