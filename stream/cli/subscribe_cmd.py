"""Placeholder: `facestream subscribe` (being written)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("subscribe", help="(not yet implemented)")
    p.set_defaults(func=lambda args: 1)
