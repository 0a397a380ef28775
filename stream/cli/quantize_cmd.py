"""Placeholder (being written)."""

from __future__ import annotations

import argparse


def register_models(sub: argparse._SubParsersAction) -> None:
    return None
