"""``facestream history prune``: apply retention by hand (a run does it in the background; see
history.keep_days, history.max_mb)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_parser(sub: argparse._SubParsersAction, store_options: Callable[[argparse.ArgumentParser], None],
               store_url: Callable[[argparse.Namespace], str]) -> None:
    """Under ``history``, whose module passes its store options and URL reader (no import back to it)."""
    p = sub.add_parser("prune", help="delete tracks older than --keep-days, then the oldest past --max-mb",
                       description="Delete tracks (with their thumbnails, embeddings and decisions) older than "
                                   "--keep-days, then the oldest until the store is under --max-mb, and strangers "
                                   "left with no track; a SQLite file then shrinks. Without the options, the "
                                   "config's history.keep_days and history.max_mb (--config).")
    store_options(p)
    p.add_argument("--keep-days", type=float, metavar="DAYS", help="keep this many days (history.keep_days)")
    p.add_argument("--max-mb", type=float, metavar="MB", help="keep the store under this size (history.max_mb)")
    p.set_defaults(func=run, store_url=store_url)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stream.errors import FacestreamError
    from stream.history import retention
    from stream.history.store import HistoryStore
    from stream.sources.credentials import mask_credentials

    keep_days, max_mb = args.keep_days, args.max_mb
    config = getattr(args, "config", None)
    if config and keep_days is None and max_mb is None:
        from stream.config.schema import load_config

        history = load_config(Path(config)).history
        keep_days, max_mb = history.keep_days, history.max_mb
    for flag, value in (("--keep-days", keep_days), ("--max-mb", max_mb)):
        if value is not None and not value > 0:
            raise FacestreamError(f"{value:g}: {flag} must be more than 0")
    if keep_days is None and max_mb is None:
        raise FacestreamError("history prune: nothing to prune by: give --keep-days and/or --max-mb (or a --config "
                              "that sets history.keep_days / history.max_mb)")
    url = args.store_url(args)
    with HistoryStore.open(url, create=False) as store:
        before, tracks = retention.file_bytes(store.engine), store.count()
        deleted = store.prune(keep_days=keep_days, max_bytes=None if max_mb is None else int(max_mb * 1024 * 1024))
        after = retention.file_bytes(store.engine)
    print(f"{mask_credentials(url)}: deleted {deleted} of {tracks} track(s) (with their decisions, thumbnails and "
          f"embeddings); {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB on disk")
    return 0
