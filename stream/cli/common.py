"""Arguments shared by several commands (loading the model and its CPU engine is the library's:
``stream.models.store.load_model``, ``stream.inference.select.cpu_engine``)."""

from __future__ import annotations

import argparse

from stream.models.store import DEFAULT_MODEL


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="NAME",
                        help=f"embedding model (default: {DEFAULT_MODEL}; see `facestream models list`)")
