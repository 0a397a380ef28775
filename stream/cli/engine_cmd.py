"""Placeholder: `facestream engine` (being written)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("engine", help="(not yet implemented)")
    p.set_defaults(func=lambda args: 1)
