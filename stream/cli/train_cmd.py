"""`facestream train`: learn an embedding with the triplet loss and install it as a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream.train.backbones import BACKBONES
from stream.train.mining import MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train or fine-tune an embedding model (needs torch)",
        description="Train an embedding with FaceNet's triplet loss on batches of P identities x K faces, "
                    "from a folder with one sub-folder of photos per person (faces detected and aligned once, "
                    "cached) or from saved tracks (--from-tracks), and install it in the model store as NAME "
                    "(ONNX + manifest; threshold from the held-out pairs). Needs pip install 'facestream[train]'.",
    )
    p.add_argument("dataset", nargs="?", type=Path, metavar="DATASET", help="folder of per-person sub-folders")
    p.add_argument("--out", required=True, metavar="NAME", help="model name to install (e.g. my-mobilefacenet)")
    p.add_argument("--from-tracks", type=Path, metavar="DIR",
                   help="learn from unlabeled tracks: DIR/<source>-<track_id>/*.png + track.json {\"frames\": [...]}")
    # Not choices=: onnx:<model> is open-ended (any installed model), checked by the trainer.
    p.add_argument("--backbone", default="mobilefacenet", metavar="NAME",
                   help=f"{' | '.join(BACKBONES)} (from scratch / facenet --weights), or onnx:<model> to fine-tune "
                        "an installed model, e.g. onnx:dlib-resnet-v1, or facenet-casia for FaceNet's weights (its "
                        "manifest's input, normalisation and template; exported L2-normalised with a held-out "
                        "threshold)")
    p.add_argument("--weights", type=Path, metavar="CKPT",
                   help="facenet-pytorch InceptionResnetV1 checkpoint to fine-tune (--backbone facenet)")
    p.add_argument("--loss", choices=["triplet", "angular", "sphereface"], default="triplet",
                   help="triplet (default); angular: additive cosine margin (CosFace, s 30, m 0.35); sphereface: "
                        "A-Softmax, multiplicative angular margin cos(m theta) annealed from softmax "
                        "(lambda = max(5, 1000 (1 + 0.12 iteration)^-1), the paper's); both need identity labels")
    p.add_argument("--margin", type=int, default=4, metavar="M",
                   help="--loss sphereface: the integer angular margin m, 1..5 (default 4, the paper's)")
    p.add_argument("--mining", choices=MODES, default="semi-hard")
    p.add_argument("--alpha", type=float, default=0.2, help="triplet margin on squared distances (default 0.2)")
    p.add_argument("--p", type=int, default=8, help="identities per batch (default 8)")
    p.add_argument("--k", type=int, default=4, help="faces per identity per batch (default 4)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3 from scratch, 1e-4 with --weights)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of each identity's faces held out (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last epoch's checkpoint")
    p.add_argument("--force", action="store_true", help="replace an installed model named NAME")
    p.add_argument("--workdir", type=Path, help="cache and checkpoints (default <engines dir>/training/NAME)")
    p.add_argument("--max-batches", type=int, help="at most this many batches per epoch")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.train.loop import TrainConfig, format_history, train

    cfg = TrainConfig(name=args.out, dataset=args.dataset, from_tracks=args.from_tracks, backbone=args.backbone,
                      weights=args.weights, loss=args.loss, margin=args.margin, mining=args.mining,
                      alpha=args.alpha, p=args.p, k=args.k, epochs=args.epochs, lr=args.lr, holdout=args.holdout,
                      seed=args.seed,
                      resume=args.resume, force=args.force, workdir=args.workdir, max_batches=args.max_batches,
                      progress=not args.no_progress)
    result = train(cfg)
    print(format_history(result.history), file=sys.stderr)
    print(f"installed {result.model_name} (ONNX vs PyTorch max abs diff {result.onnx_diff:.1e}); "
          f"use it with --model {result.model_name}")
    return 0
