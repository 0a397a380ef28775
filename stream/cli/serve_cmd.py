"""`facestream serve`: the web view without a pipeline: the gallery and strangers saved by runs."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from stream.errors import FacestreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the gallery and history web page (people, photos, strangers to name, who was seen)",
        description="The web view's gallery page alone: list, add and delete people, and name the unknown "
                    "tracks that runs saved with --save-unknowns. A running `facestream run` on the same "
                    "gallery picks every change up within a second. With --history, the History page too: who was "
                    "seen when and where, a day's timeline per camera, and search by a photo.",
    )
    p.add_argument("--gallery", type=Path, help="gallery file (created on the first enroll)")
    p.add_argument("--unknowns", type=Path, metavar="DIR", help="saved unknown tracks (run --save-unknowns DIR)")
    p.add_argument("--history", metavar="FILE|URL",
                   help="show this history store (`run --history`): the History page, its API and search by face "
                        "(overrides history.url)")
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
    history_url = args.history or config.history.url
    if args.gallery is None and not history_url:
        raise FacestreamError("serve: give --gallery FILE, --history FILE|URL, or both")
    # a file that is not a gallery: one line now, not a 400 on every page load
    if args.gallery is not None and args.gallery.exists():
        from stream.recognize.gallery import Gallery

        Gallery.load(args.gallery)
    token = resolve_token(config.web.token)
    history = None
    if history_url:  # a missing file or a bad URL is one line now, not a 404 on every page load
        from stream.history.store import HistoryStore
        from stream.web.history import HistoryView

        HistoryStore.open(history_url, create=False).close()
        history = HistoryView(history_url, config.model.name, config.photos.max_megapixels)
    enroller = PhotoEnroller(config.model.name, args.gallery, config.photos.max_megapixels) if args.gallery else None
    ctx = WebContext(gallery=args.gallery, unknowns=args.unknowns, enroller=enroller, token=token,
                     title="facestream gallery" if args.gallery else "facestream history", history=history,
                     hosts=HostPolicy.for_bind(parse_bind(args.http)[0], config.web.allowed_hosts))
    try:
        server = WebServer(create_app(ctx), args.http, token).start()
    except BaseException:
        if history is not None:
            history.close()
        raise
    print(f"facestream: {'gallery' if args.gallery else 'history'} page on {server.where} (Ctrl-C to stop)",
          file=sys.stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if enroller is not None:
            enroller.close()
        if history is not None:
            history.close()
    return 0
