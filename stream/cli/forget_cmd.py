"""``facestream forget NAME``: delete a person everywhere facestream keeps them, and say what went where."""

from __future__ import annotations

import argparse
from pathlib import Path

from stream.errors import FacestreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "forget", help="delete a person: gallery entries, photos, named strangers, history rows",
        description="Delete NAME from the gallery (with its appended segments and cached search index), the "
                    "photos added on the web page, the strangers' crops named as them, and every track, "
                    "thumbnail, embedding, decision and named stranger of theirs in the history store; then "
                    "the freed space is overwritten (SQLite) or vacuumed (PostgreSQL). Prints one line per "
                    "place. docs/privacy.md says what is stored where and what this reaches.")
    p.add_argument("name", metavar="NAME", help="the person, as enrolled or named")
    p.add_argument("--gallery", type=Path, metavar="FILE", help="the gallery file (.npz)")
    p.add_argument("--unknowns", type=Path, metavar="DIR",
                   help="the saved unknown tracks folder (run --save-unknowns DIR) whose .named/NAME to delete "
                        "(found from the gallery's own paths without it)")
    p.add_argument("--history", metavar="FILE|URL", help="the history store: a SQLite file or postgresql://...")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="take gallery, output.save_unknowns and history.url from this YAML config (the options "
                        "above win)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.history.erase import forget_everywhere

    gallery, unknowns, history = args.gallery, args.unknowns, args.history
    if args.config is not None:
        from stream.config.schema import load_config

        config = load_config(args.config)
        gallery = gallery or config.gallery
        unknowns = unknowns or config.output.save_unknowns
        history = history or config.history.url
        if gallery is None and history is None:
            raise FacestreamError(f"{args.config}: sets neither gallery nor history.url; nothing to forget from")
    erasure = forget_everywhere(args.name, gallery=gallery, unknowns=unknowns, history=history)
    for line in erasure.lines:
        print(line)
    return 0
