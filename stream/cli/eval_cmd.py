"""`facestream eval`: verification accuracy of models by the LFW protocol, over image pairs or video pairs (YouTube
Faces: `--videos`); open-set identification."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from stream.errors import FacestreamError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="verification accuracy of a model on a dataset",
        description="Verification accuracy by the LFW protocol (FaceNet paper): 10 folds, the threshold chosen "
                    "on 9, accuracy on the 10th. DATASET has one sub-folder of images per identity; LFW's "
                    "pairs.txt is used when present (or --pairs), else balanced pairs are generated (--seed). "
                    "Faces are detected and aligned as in `run`: the centred face for LFW, else the largest.")
    p.add_argument("dataset", nargs="?", type=Path, metavar="DATASET")
    p.add_argument("--pairs", type=Path, metavar="PAIRS_TXT", help="LFW-format pairs file (default DATASET/pairs.txt)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="model to evaluate; repeat to compare (e.g. a model and its -fp16/-int8 variants)")
    p.add_argument("--json", action="store_true", help="print one JSON object per model (a list if several)")
    p.add_argument("--plot", type=Path, metavar="ROC_PNG", help="draw the ROC curves of all models (needs matplotlib)")
    p.add_argument("--save-threshold", action="store_true",
                   help="write the calibrated threshold into each model's manifest (run/enroll use it from then on)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated pairs (default 0)")
    p.add_argument("--pairs-per-fold", type=int, default=300,
                   help="generated matched (and as many mismatched) pairs per fold (default 300, as LFW)")
    p.add_argument("--gallery", type=Path, help="open-set identification: gallery file (.npz) to match probes to")
    p.add_argument("--probes", type=Path, metavar="DIR",
                   help="open-set identification: one sub-folder per identity; those not enrolled are strangers")
    p.add_argument("--threshold", type=float,
                   help="open-set threshold (default: this run's calibrated one, else the manifest's)")
    v = p.add_argument_group(
        "video-level protocol (YouTube Faces)",
        "Pairs of videos, each represented by its first N frames: by the mean of their embeddings, and by the "
        "mean distance of all their frame pairs (the FaceNet paper's YTF figure); 10 folds, the same report.")
    v.add_argument("--videos", type=Path, metavar="DIR",
                   help="YouTube Faces' layout DIR/<person>/<video number>/*.jpg (whole frames; the largest face) "
                        "with its splits.txt ('split, person/n1, person/n2, ..., is_same'; --pairs, default "
                        "DIR/splits.txt; none: pairs generated), or with --labels the saved tracks of "
                        "`run --save-unknowns DIR` (aligned crops, embedded as they are)")
    v.add_argument("--labels", type=Path, metavar="FILE",
                   help="--videos of saved tracks: lines 'TRACK_FOLDER PERSON'; pairs generated (--seed, "
                        "--pairs-per-fold); unlabelled tracks are left out")
    v.add_argument("--frames", type=int, default=100, metavar="N",
                   help="first N frames of each video (default 100, the FaceNet paper's)")
    v.add_argument("--video-score", choices=["mean-embedding", "frame-pairs", "both"], default="both",
                   help="report the mean-embedding score, the frame-pairs score, or both side by side (default)")
    p.set_defaults(func=run)


def _pairs(args: argparse.Namespace):
    from stream.evaluate.pairs import generate_pairs, parse_lfw_pairs, scan_identities

    root: Path = args.dataset
    if not root.is_dir():
        raise FacestreamError(f"{root}: not found" if not root.exists() else f"{root}: not a directory")
    pairs_txt = args.pairs or (root / "pairs.txt" if (root / "pairs.txt").is_file() else None)
    if pairs_txt is not None:
        pairs = parse_lfw_pairs(pairs_txt, root)
        for pair in pairs:  # every image checked before any work
            for image in (pair.a, pair.b):
                if not image.is_file():
                    raise FacestreamError(f"{image}: not found (named in {pairs_txt})")
        return pairs, "centre", f"{pairs_txt.name}"
    pairs = generate_pairs(scan_identities(root), args.pairs_per_fold, seed=args.seed)
    return pairs, "largest", f"generated, seed {args.seed}"


def _pair_distances(manifest, embeddings: dict[Path, np.ndarray], pairs) -> np.ndarray:
    """Distance of each pair under the model's metric (diagonal of chunked distance matrices)."""
    out = np.empty(len(pairs), np.float64)
    for start in range(0, len(pairs), 256):
        part = pairs[start:start + 256]
        a = np.stack([embeddings[p.a] for p in part])
        b = np.stack([embeddings[p.b] for p in part])
        out[start:start + len(part)] = np.diagonal(manifest.distances(a, b))
    return out


def _fmt(x: float, spec: str = ".4f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def run(args: argparse.Namespace) -> int:
    from stream.evaluate.protocol import FAR_TARGET, evaluate, roc_curve
    from stream.models.store import DEFAULT_MODEL, ModelStore
    from stream.photos import detect_crops, embed_crops

    if args.videos is not None:
        return _run_videos(args)
    if args.labels is not None:
        raise FacestreamError(f"--labels {args.labels}: goes with --videos DIR")
    if args.dataset is None and args.probes is None:
        raise FacestreamError("eval: give a DATASET, or --gallery G --probes DIR")
    if (args.gallery is None) != (args.probes is None):
        raise FacestreamError("eval: --gallery and --probes go together")
    if args.save_threshold and args.dataset is None:
        raise FacestreamError("--save-threshold: needs a DATASET to calibrate on")
    if args.plot is not None and args.dataset is None:
        raise FacestreamError(f"{args.plot}: --plot needs a DATASET")
    if args.plot is not None and not args.plot.parent.is_dir():  # before minutes of work, not after
        raise FacestreamError(f"{args.plot}: folder {args.plot.parent} not found")
    if args.threshold is not None and not args.threshold > 0:
        raise FacestreamError(f"--threshold {args.threshold}: must be positive")
    store = ModelStore()
    names = list(dict.fromkeys(args.model or [DEFAULT_MODEL]))
    models = [store.get(n) for n in names]

    pairs, rule, pairs_from = _pairs(args) if args.dataset is not None else ([], "largest", "")
    images = list(dict.fromkeys(p for pair in pairs for p in (pair.a, pair.b)))
    crops_cache: dict[str, tuple[dict[Path, np.ndarray], list[Path]]] = {}
    results: list[dict] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for model in models:
        manifest = model.manifest
        record: dict = {"model": model.name, "metric": manifest.metric, "manifest_threshold": manifest.threshold}
        if pairs:
            key = manifest.alignment.model_dump_json()  # same template: same crops, detect once
            if key not in crops_cache:
                crops_cache[key] = detect_crops(images, manifest, rule)
            crops, missing = crops_cache[key]
            embeddings = embed_crops(crops, model)
            kept = [p for p in pairs if p.a in embeddings and p.b in embeddings]
            if not kept or len({p.fold for p in kept}) < 2:
                raise FacestreamError(f"{args.dataset}: faces found in too few images to score any fold "
                                      f"({len(missing)} of {len(images)} images without a face)")
            d = _pair_distances(manifest, embeddings, kept)
            same = np.array([p.same for p in kept])
            result = evaluate(d, same, np.array([p.fold for p in kept]), FAR_TARGET)
            fpr, tpr = roc_curve(d, same)
            curves[model.name] = (fpr, tpr, result.auc)
            record.update({
                "dataset": args.dataset.name, "pairs_from": pairs_from, "face_rule": rule,
                "pairs": len(kept), "pairs_excluded": len(pairs) - len(kept), "images": len(images),
                "faces_missing": len(missing), "faces_missing_images": [str(p) for p in missing],
                "far_target": FAR_TARGET, **result.as_dict(),
            })
            if args.save_threshold:
                from stream.evaluate.calibration import save_threshold

                save_threshold(store, model.name, result.threshold, args.dataset.name, len(kept), result.accuracy)
                record["threshold_saved"] = True
        if args.probes is not None:
            scores, probes_missing = _open_set(args, model, record.get("threshold"))
            record["open_set"] = {**scores.as_dict(), "faces_missing": len(probes_missing),
                                  "faces_missing_images": [str(p) for p in probes_missing]}
        results.append(record)

    title = "" if args.plot is None else f"ROC on {args.dataset.name} ({results[0]['pairs']} pairs)"
    return _report(args, results, curves, title)  # an open-set run has no DATASET


def _run_videos(args: argparse.Namespace) -> int:
    from stream.evaluate.video_scores import SCORES, check_crops_fit, evaluate_videos
    from stream.evaluate.videos import SPLITS_FILE, load_tracks, load_ytf
    from stream.models.store import DEFAULT_MODEL, ModelStore

    for given, flag in ((args.dataset, "DATASET"), (args.probes, "--probes"), (args.gallery, "--gallery")):
        if given is not None:
            raise FacestreamError(f"--videos: not with {flag} {given} (one protocol per run)")
    if args.save_threshold:
        raise FacestreamError("--save-threshold: not with --videos (a video threshold is not a per-face one)")
    if args.frames < 1:
        raise FacestreamError(f"--frames {args.frames}: must be at least 1")
    if args.plot is not None and not args.plot.parent.is_dir():
        raise FacestreamError(f"{args.plot}: folder {args.plot.parent} not found")
    root: Path = args.videos
    if args.labels is not None:
        videos = load_tracks(root, args.labels, args.pairs_per_fold, args.seed)
    else:
        splits = args.pairs or (root / SPLITS_FILE if (root / SPLITS_FILE).is_file() else None)
        videos = load_ytf(root, splits, args.pairs_per_fold, args.seed)
    scores = SCORES if args.video_score == "both" else (args.video_score,)
    store = ModelStore()
    results: list[dict] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    caches: dict[str, dict] = {}
    for name in dict.fromkeys(args.model or [DEFAULT_MODEL]):
        model = store.get(name)
        if videos.aligned:
            check_crops_fit(videos, model, store)
        cache = caches.setdefault(model.manifest.alignment.model_dump_json(), {})
        for record, curve in evaluate_videos(videos, model, args.frames, scores, cache):
            record["dataset"] = root.name
            results.append(record)
            curves[f"{model.name} {record['video_score']}"] = curve
    return _report(args, results, curves, f"ROC on {root.name} ({results[0]['pairs']} video pairs)")


def _report(args: argparse.Namespace, results: list[dict], curves: dict, title: str) -> int:
    """The ROC plot (--plot), then the records: one JSON object (a list if several) or the text report."""
    if args.plot is not None:
        from stream.evaluate.plot import plot_roc

        plot_roc(curves, args.plot, title)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results))
    else:
        for record in results:
            _print(record)
        if args.plot is not None:
            print(f"ROC curves: {args.plot}")
    return 0


def _open_set(args: argparse.Namespace, model, calibrated: float | None):
    from stream.evaluate.openset import open_set
    from stream.evaluate.pairs import scan_identities
    from stream.photos import detect_crops, embed_crops
    from stream.recognize.gallery import Gallery

    gallery = Gallery.load(args.gallery, model.manifest)
    people = scan_identities(args.probes)
    truth_of = {img: name for name, imgs in people.items() for img in imgs}
    crops, missing = detect_crops(list(truth_of), model.manifest, "largest")
    if not crops:
        raise FacestreamError(f"{args.probes}: no face found in any probe image")
    embeddings = embed_crops(crops, model)
    probes = list(embeddings)
    names, distances = gallery.match(np.stack([embeddings[p] for p in probes]))
    threshold = args.threshold or calibrated or model.manifest.threshold
    scores = open_set(names, distances, [truth_of[p] for p in probes], set(gallery.identities()), threshold)
    return scores, missing


def _print(r: dict) -> None:
    print(f"{r['model']} ({r['metric']}, manifest threshold {r['manifest_threshold']:g})")
    if "video_score" in r:
        how = "mean embedding" if r["video_score"] == "mean-embedding" else "mean distance of all frame pairs"
        print(f"  videos: {r['video_score']} ({how} of the first {r['frames_per_video']} frames; {r['videos']} "
              f"videos, {r['videos_without_face']} without a face; {r['frames_embedded']} frames embedded)")
    if "accuracy" in r:
        missing = f"{r['faces_missing']} of {r['images']} images with no face found"
        if r["pairs_excluded"]:
            missing += f", their {r['pairs_excluded']} pairs excluded"
        print(f"  {r['dataset']}: {r['pairs']} pairs ({r['pairs_from']}; {missing})")
        print(f"  accuracy   {_fmt(r['accuracy'])} +- {_fmt(r['accuracy_se'])}  (10-fold, threshold from 9)")
        print(f"  VAL        {_fmt(r['val'])} +- {_fmt(r['val_se'])} @ FAR {_fmt(r['far'], '.5f')} "
              f"(target {r['far_target']:g})")
        print(f"  AUC        {_fmt(r['auc'])}")
        saved = "; saved to the manifest" if r.get("threshold_saved") else ""
        print(f"  threshold  {_fmt(r['threshold'])} (chosen on all pairs; folds' mean "
              f"{_fmt(r['fold_threshold_mean'])}){saved}")
    if "open_set" in r:
        o = r["open_set"]
        print(f"  open set at threshold {o['threshold']:.4f}: {o['known']} known probes, top-1 {_fmt(o['top1'])}, "
              f"identified within threshold {_fmt(o['identified'])}; {o['strangers']} strangers, "
              f"wrongly named {_fmt(o['strangers_named'])}; {o['faces_missing']} probe image(s) with no face found, "
              "left out")
