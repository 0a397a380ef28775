"""`facestream keys generate`: a CURVE keypair for secured events (see stream.events.curve)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="CURVE keys for encrypted, authenticated events")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    sub.required = True
    g = sub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (secret, 0600) into DIR")
    g.add_argument("dir", type=Path, metavar="DIR", help="folder for the two files (created if missing)")
    g.add_argument("--name", default="facestream", help="file name stem (default: facestream)")
    g.set_defaults(func=generate)


def generate(args: argparse.Namespace) -> int:
    from stream.events.curve import generate as write_keys

    public, secret = write_keys(args.dir, args.name)
    print(f"public key: {public}  (give it out: the server's to subscribers, a client's into --publish-clients)")
    print(f"secret key: {secret}  (keep it private)")
    return 0
