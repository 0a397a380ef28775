"""The training loop: epochs of P x K batches, held-out verification, checkpoints, resume, export."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stream.errors import FacestreamError
from stream.models.manifest import AlignmentTemplate, InputSpec
from stream.models.preprocess import to_input_tensor
from stream.models.store import ModelStore
from stream.train import backbones
from stream.train.data import FaceSet, PKSampler, augment, holdout_split, load_identity_faces
from stream.train.deps import require_torch
from stream.train.mining import MODES, triplet_loss
from stream.train.verify import Verification, verify

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    name: str
    dataset: Path | None = None
    from_tracks: Path | None = None
    backbone: str = "mobilefacenet"
    weights: Path | None = None  # a facenet-pytorch checkpoint to fine-tune (facenet only)
    loss: str = "triplet"  # triplet | angular (CosFace) | sphereface (A-Softmax)
    margin: int = 4  # SphereFace's integer angular margin m (--loss sphereface)
    mining: str = "semi-hard"
    alpha: float = 0.2
    p: int = 8
    k: int = 4
    epochs: int = 10
    lr: float | None = None  # default: 1e-3 from scratch, 1e-4 when fine-tuning
    holdout: float = 0.2
    seed: int = 0
    resume: bool = False
    force: bool = False  # replace an installed model of that name
    workdir: Path | None = None  # default <engines dir>/training/<name>
    max_batches: int | None = None  # per epoch; for quick checks and measurements
    progress: bool = True


@dataclass
class EpochStats:
    epoch: int
    loss: float
    active: float
    images_per_s: float
    accuracy: float  # held-out 10-fold accuracy (stream.evaluate.protocol), NaN without held-out pairs
    threshold: float
    accuracy_se: float = float("nan")


@dataclass
class TrainResult:
    model_name: str
    history: list[EpochStats] = field(default_factory=list)
    onnx_diff: float = float("nan")


def _input_spec(spec: backbones.BackboneSpec) -> InputSpec:
    if spec.base is not None:  # onnx:<model>: exactly the preprocessing the model was made with
        return spec.base.input
    return InputSpec(name="input", width=spec.size, height=spec.size, channel_order="RGB",
                     mean=(spec.mean,) * 3, std=(spec.std,) * 3)


def load_faces(cfg: TrainConfig, template: AlignmentTemplate, workdir: Path) -> FaceSet:
    if (cfg.dataset is None) == (cfg.from_tracks is None):
        raise FacestreamError("give a DATASET folder or --from-tracks DIR (one of them)")
    if cfg.from_tracks is not None:
        from stream.train.track_dataset import load_track_faces

        return load_track_faces(cfg.from_tracks, template)
    return load_identity_faces(cfg.dataset, template, workdir, progress=cfg.progress)


def _check(cfg: TrainConfig) -> None:
    if cfg.backbone not in backbones.BACKBONES and not backbones.is_onnx(cfg.backbone):
        raise FacestreamError(f"--backbone {cfg.backbone}: choose from {', '.join(backbones.BACKBONES)} "
                              f"or {backbones.ONNX_PREFIX}<installed model>")
    if cfg.mining not in MODES:
        raise FacestreamError(f"--mining {cfg.mining}: choose from {', '.join(MODES)}")
    if cfg.loss not in ("triplet", "angular", "sphereface"):
        raise FacestreamError(f"--loss {cfg.loss}: choose triplet, angular or sphereface")
    if cfg.loss != "triplet" and cfg.from_tracks is not None:
        raise FacestreamError(f"--loss {cfg.loss} needs identity labels; with --from-tracks use --loss triplet")
    if cfg.loss == "sphereface" and not 1 <= cfg.margin <= 5:
        raise FacestreamError(f"--margin {cfg.margin}: SphereFace's margin is an integer from 1 to 5 (paper: 4)")
    if cfg.weights is not None and cfg.backbone != "facenet":
        raise FacestreamError(f"--weights {cfg.weights}: only for --backbone facenet")
    if cfg.epochs < 1 or cfg.alpha <= 0:
        raise FacestreamError(f"--epochs {cfg.epochs} --alpha {cfg.alpha}: need epochs >= 1 and alpha > 0")


def embed(model: Any, crops: np.ndarray, spec: InputSpec, batch: int = 64) -> np.ndarray:
    torch = require_torch()
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            out.append(model(torch.from_numpy(to_input_tensor(crops[i:i + batch], spec))).numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def train(cfg: TrainConfig, store: ModelStore | None = None) -> TrainResult:
    torch = require_torch()
    _check(cfg)
    store = store or ModelStore()
    store.model_dir(cfg.name)  # a bad --out name fails before any work
    if cfg.name in store.installed_names() and not (cfg.force or cfg.resume):
        raise FacestreamError(f"--out {cfg.name}: already installed (use --force to replace it, or another name)")
    workdir = Path(cfg.workdir) if cfg.workdir else store.root / "training" / cfg.name
    workdir.mkdir(parents=True, exist_ok=True)
    spec = backbones.spec_for(cfg.backbone, store)
    in_spec = _input_spec(spec)
    # The base model's own template (not a rescaled one): its crops must be aligned as in `run`.
    template = spec.base.alignment if spec.base is not None else AlignmentTemplate(
        width=spec.size, height=spec.size, points=spec.template)
    faces = load_faces(cfg, template, workdir)
    train_idx, held_idx = holdout_split(faces, cfg.holdout, cfg.seed)
    train_set, held_set = faces.subset(train_idx), faces.subset(held_idx)
    log.info("%d faces of %d identities: %d to train, %d held out", len(faces), len(np.unique(faces.labels)),
             len(train_set), len(held_set))

    torch.manual_seed(cfg.seed)
    model = backbones.build(cfg.backbone, cfg.weights, spec)
    fine_tuning = cfg.weights is not None or spec.base is not None
    if spec.onnx_path is not None:
        # Before any training: the converted graph must compute what the installed model does.
        sample = faces.crops[np.linspace(0, len(faces) - 1, min(8, len(faces))).astype(int)]
        diff = backbones.check_conversion(model.inner, spec.onnx_path, to_input_tensor(sample, in_spec))
        log.info("%s: torch conversion matches ONNX Runtime to %.1e on %d crops", cfg.backbone, diff, len(sample))
    head = None
    params = list(model.parameters())
    if cfg.loss == "angular":
        from stream.train.angular import cosine_margin_head

        head = cosine_margin_head(spec.embedding_size, len(faces.names))
        params += list(head.parameters())
    elif cfg.loss == "sphereface":
        from stream.train.angular import sphereface_head

        head = sphereface_head(spec.embedding_size, len(faces.names), cfg.margin)
        params += list(head.parameters())
    lr = cfg.lr or (1e-4 if fine_tuning else 1e-3)
    # No weight decay when fine-tuning: Adam scales the decay's gradient like any other, so with no active
    # triplets (a pretrained model often separates the batch by more than alpha) it alone moves every
    # weight by ~lr per step, eroding the pretrained weights (measured by tools/bench_finetune.py).
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=0.0 if fine_tuning else 5e-4)
    sampler = PKSampler(train_set.labels, cfg.p, cfg.k, cfg.seed, train_set.negatives)

    result = TrainResult(cfg.name)
    start_epoch = 0
    ckpt_path = workdir / CHECKPOINT
    if cfg.resume:
        start_epoch, result.history = _load_checkpoint(ckpt_path, cfg, model, optimizer, head)

    if start_epoch == 0 and fine_tuning:
        # Epoch 0: the starting model's held-out figure, what fine-tuning is to beat.
        check = _heldout(model, held_set, in_spec, cfg.seed)
        result.history.append(EpochStats(0, float("nan"), float("nan"), float("nan"), check.accuracy,
                                         check.threshold, check.accuracy_se))
        log.info("epoch 0 (before training): held-out 10-fold accuracy %.3f +- %.3f at %.3f (%d pairs)",
                 check.accuracy, check.accuracy_se, check.threshold, check.pairs)
    rng = np.random.default_rng([cfg.seed, start_epoch, 1])
    for epoch in range(start_epoch, cfg.epochs):
        stats = _run_epoch(model, head, optimizer, sampler, train_set, in_spec, cfg, epoch, rng)
        check = _heldout(model, held_set, in_spec, cfg.seed)
        result.history.append(EpochStats(epoch + 1, *stats, check.accuracy, check.threshold, check.accuracy_se))
        log.info("epoch %d: loss %.4f, active %.2f, %.1f img/s, held-out 10-fold accuracy %.3f +- %.3f at %.3f "
                 "(%d pairs)", epoch + 1, stats[0], stats[1], stats[2], check.accuracy, check.accuracy_se,
                 check.threshold, check.pairs)
        _save_checkpoint(ckpt_path, cfg, model, optimizer, head, epoch + 1, result.history)

    from stream.train.export import export_to_store

    threshold = result.history[-1].threshold if result.history else float("nan")
    # (fine-tuned from onnx:<model>: the export is the normalised wrapper, its manifest says so)
    source = f"facestream train {cfg.backbone} on {cfg.from_tracks or cfg.dataset}"
    installed, result.onnx_diff = export_to_store(model, spec, cfg.name, threshold, source, store)
    log.info("installed %s (ONNX vs PyTorch %.1e)", installed.name, result.onnx_diff)
    return result


def _run_epoch(model: Any, head: Any, optimizer: Any, sampler: PKSampler, data: FaceSet, spec: InputSpec,
               cfg: TrainConfig, epoch: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """One pass; returns (mean loss, mean active fraction, images/s)."""
    torch = require_torch()
    model.train()
    batches = len(sampler) if cfg.max_batches is None else min(len(sampler), cfg.max_batches)
    losses, actives, images = [], [], 0
    started = time.perf_counter()
    bar = tqdm(total=batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not cfg.progress)
    for step, index in enumerate(sampler.epoch(epoch)):
        if step >= batches:
            break
        x = torch.from_numpy(to_input_tensor(augment(data.crops[index], rng), spec))
        labels = data.labels[index]
        embeddings = model(x)
        if head is not None:
            loss, active = head(embeddings, torch.from_numpy(labels))
        else:
            negatives = None if data.negatives is None else data.negatives[np.ix_(index, index)]
            mined = triplet_loss(embeddings, labels, cfg.mining, cfg.alpha, negatives)
            loss, active = mined.loss, mined.active_fraction
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        actives.append(active)
        images += len(index)
        rate = images / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", active=f"{active:.2f}", img_s=f"{rate:.1f}")
        bar.update()
    bar.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    return float(np.mean(losses)), float(np.mean(actives)), images / elapsed


def _heldout(model: Any, held: FaceSet, spec: InputSpec, seed: int) -> Verification:
    if len(held) < 2:
        return Verification(float("nan"), float("nan"), float("nan"), 0)
    return verify(embed(model, held.crops, spec), held.labels, held.negatives, seed=seed)


def _save_checkpoint(path: Path, cfg: TrainConfig, model: Any, optimizer: Any, head: Any, epoch: int,
                     history: list[EpochStats]) -> None:
    torch = require_torch()
    state = {"backbone": cfg.backbone, "loss": cfg.loss, "epoch": epoch, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "history": [asdict(h) for h in history]}
    if head is not None:
        state["head"] = head.state_dict()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-save keeps the previous epoch's checkpoint


def _load_checkpoint(path: Path, cfg: TrainConfig, model: Any, optimizer: Any, head: Any
                     ) -> tuple[int, list[EpochStats]]:
    torch = require_torch()
    if not path.is_file():
        raise FacestreamError(f"{path}: no checkpoint to --resume from")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)  # tensors and plain data only
        if state["backbone"] != cfg.backbone or state["loss"] != cfg.loss:
            raise FacestreamError(f"{path}: a {state['backbone']}/{state['loss']} checkpoint, not "
                                  f"{cfg.backbone}/{cfg.loss}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if head is not None:
            head.load_state_dict(state["head"])
    except FacestreamError:
        raise
    except Exception as exc:  # unpickling, missing keys, shape mismatches
        raise FacestreamError(f"{path}: not a usable training checkpoint ({str(exc).splitlines()[0][:160]})") from None
    history = [EpochStats(**h) for h in state.get("history", [])]
    log.info("resuming %s after epoch %d", path, state["epoch"])
    return int(state["epoch"]), history


def format_history(history: list[EpochStats]) -> str:
    rows = ["epoch  loss    active  img/s   held-out 10-fold acc  threshold"]
    for h in history:
        acc = "   n/a        " if math.isnan(h.accuracy) else f"{h.accuracy:6.3f} +- {h.accuracy_se:.3f}"
        if h.epoch == 0:  # the starting model, before any step: only the held-out figure
            rows.append(f"{0:5d}  {'-':6}  {'-':4}    {'-':>6}  {acc}        {h.threshold:.3f}")
            continue
        rows.append(f"{h.epoch:5d}  {h.loss:.4f}  {h.active:.2f}    {h.images_per_s:6.1f}  {acc}        "
                    f"{h.threshold:.3f}")
    return "\n".join(rows)
