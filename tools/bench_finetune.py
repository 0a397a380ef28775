#!/usr/bin/env python
"""Fine-tuning FaceNet from tracks, measured on held-out identities: before and after, same pairs.

The protocol (issue 23, item 4): the people evaluated are never in the training tracks, so the figure
is about new people, not about held-out crops of the tracks trained on.

1. Tracks: `facestream run --model facenet-casia --save-unknowns` on tests/media/short_hamilton_clip.mp4
   (what a user would train from), keeping 20 crops per track (``output.unknown_crops``).
2. Test people: the folder-per-identity set of tests/support/eval_dataset.py (the photos of tests/media
   plus clip samples labelled by hand: Lin-Manuel Miranda in frames 90-210, Alex Lacamoire in ~24-36 and
   76-84, Barack Obama in the audience of 215-274; Joe Biden only in photos).
3. Each fold names its test people and keeps, as training tracks, only those whose frames cannot show
   them (by the frame ranges above): fold ``lin-alex-biden`` trains on the opening shot (frames 0-13)
   and the audience (211-274); fold ``obama-biden`` on everything before the audience (frames < 211).
4. `facestream train --from-tracks <kept> --backbone facenet-casia` (triplet loss), then `facestream eval`
   (10 folds, stream/evaluate/protocol.py) of the stock and the fine-tuned model on the test people only.
   Hyper-parameters are fixed below and were not tuned on the test people.

    nice -n 10 python tools/bench_finetune.py [--workdir DIR] [--epochs 1] [--alpha 0.2] [--json out.json]

Needs ``pip install -e '.[facenet,train]'`` (CPU torch is enough; no onnx2torch). Training runs under
``nice -n 10``. The data is tiny (tens of faces): read the pair counts and standard errors it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLIP = REPO / "tests" / "media" / "short_hamilton_clip.mp4"
BASE = "facenet-casia"
UNKNOWN_CROPS = 20


@dataclass(frozen=True)
class Fold:
    test: tuple[str, ...]  # identities of tests/support/eval_dataset.py evaluated
    frames: tuple[int, int] | None  # a track is trained on only if all its frames are outside [lo, hi]
    before: int | None = None  # ... or, if set, only if its last frame is below this


# Frame ranges from tests/support/eval_dataset.py's labels (who is on screen when).
FOLDS = {
    "lin-alex-biden": Fold(("lin-manuel-miranda", "alex-lacamoire", "biden"), frames=(20, 210)),
    "obama-biden": Fold(("obama", "biden"), frames=None, before=211),
}


def keep_track(fold: Fold, frames: list[int]) -> bool:
    if fold.before is not None:
        return max(frames) < fold.before
    lo, hi = fold.frames
    return all(f < lo or f > hi for f in frames)


def _env(engines: Path) -> dict[str, str]:
    return {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines), "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str], engines: Path, nice: bool = False) -> subprocess.CompletedProcess:
    full = (["nice", "-n", "10"] if nice else []) + [sys.executable, "-m", "stream", *cmd]
    print("+", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(full, capture_output=True, text=True, env=_env(engines), cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def prepare(workdir: Path, engines: Path) -> tuple[Path, Path]:
    """The clip's saved tracks and the labelled eval set, made once and reused."""
    from stream.models.store import ModelStore

    if not (engines / "models" / BASE).is_dir():
        # A copy of the installed built-in model (converted once), so the tool never writes the user's store.
        installed = ModelStore().get(BASE)
        shutil.copytree(installed.onnx_path.parent, engines / "models" / BASE)
    tracks, evalset = workdir / "tracks", workdir / "eval"
    if not tracks.is_dir():
        # More crops per track than run's default 5, so each track keeps held-out crops for the
        # trainer's own threshold (a fixed choice, not tuned on the test people).
        config = workdir / "run.yaml"
        config.write_text(f"output:\n  unknown_crops: {UNKNOWN_CROPS}\n")
        _run(["run", "--source", str(CLIP), "--model", BASE, "--config", str(config), "--save-unknowns",
              str(tracks), "--no-progress"], engines, nice=True)
    if not evalset.is_dir():
        from tests.support.eval_dataset import build_eval_dataset

        print(f"eval set: {build_eval_dataset(evalset)}", file=sys.stderr)
    return tracks, evalset


def split(fold_name: str, fold: Fold, tracks: Path, evalset: Path, workdir: Path) -> tuple[Path, Path, list[str]]:
    root = workdir / fold_name
    shutil.rmtree(root, ignore_errors=True)
    train_dir, test_dir = root / "train-tracks", root / "test-people"
    train_dir.mkdir(parents=True)
    test_dir.mkdir()
    kept = []
    for folder in sorted(p for p in tracks.iterdir() if p.is_dir() and not p.name.startswith(".")):
        frames = json.loads((folder / "track.json").read_text())["frames"]
        if keep_track(fold, frames):
            (train_dir / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
            kept.append(folder.name)
    for person in fold.test:
        (test_dir / person).symlink_to((evalset / person).resolve(), target_is_directory=True)
    return train_dir, test_dir, kept


def measure(fold_name: str, fold: Fold, tracks: Path, evalset: Path, workdir: Path, engines: Path,
            args: argparse.Namespace) -> dict:
    train_dir, test_dir, kept = split(fold_name, fold, tracks, evalset, workdir)
    tuned = f"{BASE}-ft-{fold_name}"
    train = _run(["train", "--from-tracks", str(train_dir), "--backbone", BASE, "--out", tuned, "--force",
                  "--epochs", str(args.epochs), "--p", str(args.p), "--k", str(args.k), "--mining", args.mining,
                  "--alpha", str(args.alpha),
                  "--seed", str(args.seed), "--workdir", str(workdir / fold_name / "train"), "--no-progress"],
                 engines, nice=True)
    history = [line for line in train.stderr.splitlines() if line[:5].strip().isdigit() or line.startswith("epoch")]
    evaluated = json.loads(_run(["eval", str(test_dir), "--model", BASE, "--model", tuned, "--json"],
                                engines, nice=True).stdout)
    keys = ("pairs", "images", "accuracy", "accuracy_se", "val", "val_se", "far", "auc", "threshold")
    return {"fold": fold_name, "test_people": list(fold.test), "train_tracks": kept, "train_history": history,
            "before": {k: evaluated[0][k] for k in keys}, "after": {k: evaluated[1][k] for k in keys}}


def print_table(results: list[dict]) -> None:
    # VAL is at the FAR the 10-fold thresholds reach (the `far` column): with tens of pairs per fold
    # it cannot reach the 0.001 target. thr is in each model's metric (cosine before, euclidean after).
    print(f"{'fold':16} {'model':10} {'pairs':>5} {'accuracy':>15} {'VAL':>15} {'FAR':>6} {'AUC':>6} {'thr':>6}")
    for r in results:
        for label in ("before", "after"):
            m = r[label]
            print(f"{r['fold']:16} {label:10} {m['pairs']:5d} {m['accuracy']:7.3f} +- {m['accuracy_se']:.3f} "
                  f"{m['val']:7.3f} +- {m['val_se']:.3f} {m['far']:6.3f} {m['auc']:6.3f} {m['threshold']:6.3f}")
        b, a = r["before"], r["after"]
        print(f"{r['fold']:16} {'after-bef':10} {'':5} {a['accuracy'] - b['accuracy']:+7.3f}"
              f"{'':9}{a['val'] - b['val']:+7.3f}{'':16}{a['auc'] - b['auc']:+6.3f}   "
              f"(trained on {len(r['train_tracks'])} tracks: {', '.join(r['train_tracks'])})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench-finetune"))
    p.add_argument("--folds", nargs="+", choices=sorted(FOLDS), default=sorted(FOLDS))
    p.add_argument("--epochs", type=int, default=1, help="default 1: minutes per fold on a loaded 2-core CPU")
    p.add_argument("--p", type=int, default=3, help="tracks per batch")
    p.add_argument("--k", type=int, default=4, help="crops per track per batch")
    p.add_argument("--mining", default="semi-hard", help="as `train` (default semi-hard, the paper's)")
    p.add_argument("--alpha", type=float, default=0.2, help="triplet margin (default 0.2, the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    engines = args.workdir / "engines"
    tracks, evalset = prepare(args.workdir, engines)
    results = [measure(name, FOLDS[name], tracks, evalset, args.workdir, engines, args) for name in args.folds]
    for r in results:
        print(f"{r['fold']}: train history\n" + "\n".join(r["train_history"]), file=sys.stderr)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
