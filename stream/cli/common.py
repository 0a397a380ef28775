"""Helpers shared by several commands: model and engine set-up for one-shot CLI work."""

from __future__ import annotations

import argparse

from stream.models.store import DEFAULT_MODEL, InstalledModel, ModelStore


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="NAME",
                        help=f"embedding model (default: {DEFAULT_MODEL}; see `facestream models list`)")


def load_model(name: str | None) -> InstalledModel:
    return ModelStore().get(name or DEFAULT_MODEL)


def cpu_engine(model: InstalledModel, max_batch: int = 32):
    """An ONNX Runtime engine for one-shot commands (embed, enroll): no GPU start-up cost."""
    from stream.inference.onnxrt import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model.manifest, model.onnx_path, max_batch=max_batch)
