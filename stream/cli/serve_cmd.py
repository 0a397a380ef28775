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
    from stream.web.guard import HostPolicy
    from stream.web.people import PhotoEnroller
    from stream.web.server import WebServer, parse_bind, resolve_token

    config = load_config(args.config)
    if args.gallery.exists():  # a file that is not a gallery: one line now, not a 400 on every page load
        from stream.recognize.gallery import Gallery

        Gallery.load(args.gallery)
    token = resolve_token(config.web.token)
    enroller = PhotoEnroller(config.model.name, args.gallery, config.photos.max_megapixels)
    ctx = WebContext(gallery=args.gallery, unknowns=args.unknowns, enroller=enroller, token=token,
                     title="facestream gallery", hosts=HostPolicy.for_bind(parse_bind(args.http)[0],
                                                                           config.web.allowed_hosts))
    server = WebServer(create_app(ctx), args.http, token).start()
    print(f"facestream: gallery page on {server.where} (Ctrl-C to stop)", file=sys.stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        enroller.close()
    return 0
