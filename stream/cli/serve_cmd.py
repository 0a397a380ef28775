"""`facestream serve`: the web view without a pipeline: the gallery and strangers saved by runs."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the gallery web page (people, photos, strangers to name)",
        description="The web view's gallery page alone: list, add and delete people, and name the unknown "
                    "tracks that runs saved with --save-unknowns. A running `facestream run` on the same "
                    "gallery picks every change up within a second.",
    )
    p.add_argument("--gallery", type=Path, required=True, help="gallery file (created on the first enroll)")
    p.add_argument("--unknowns", type=Path, metavar="DIR", help="saved unknown tracks (run --save-unknowns DIR)")
    p.add_argument("--http", default="127.0.0.1:8080", metavar="[HOST:]PORT", help="where to listen")
    p.add_argument("--config", type=Path, help="YAML config: web.token, model.name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.config.schema import load_config
    from stream.web.app import WebContext, create_app
    from stream.web.people import PhotoEnroller
    from stream.web.server import WebServer, resolve_token

    config = load_config(args.config)
    token = resolve_token(config.web.token)
    enroller = PhotoEnroller(config.model.name, args.gallery)
    ctx = WebContext(gallery=args.gallery, unknowns=args.unknowns, enroller=enroller, token=token,
                     title="facestream gallery")
    server = WebServer(create_app(ctx), args.http, token).start()
    print(f"facestream: gallery page on {server.url} (Ctrl-C to stop)", file=sys.stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        enroller.close()
    return 0
