"""``facestream history``: who was seen, where and when, from a run's history store."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from stream.cli import history_prune
from stream.errors import FacestreamError
from stream.history.times import parse_time

if TYPE_CHECKING:
    from stream.history.store import TrackRow

# Below this a time is a file's pts (its start was not known), not a date: ten years of video.
PTS_ONLY = 10 * 365 * 86400


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "history", help="who was seen, on which camera, when (from --history / history.url)",
        description="List the tracks a run kept in its history store: by default one line per person with "
                    "first and last seen; --tracks for every track; --json / --csv for programs.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--history", metavar="FILE", help="the SQLite file a run wrote with --history")
    where.add_argument("--url", metavar="URL", help="sqlite:///FILE or postgresql://...")
    p.add_argument("--config", help="read history.url from this YAML config")
    p.add_argument("--who", metavar="NAME", help="only this person's tracks")
    p.add_argument("--camera", metavar="SOURCE", help="only this source (camera name or file stem)")
    p.add_argument("--since", metavar="TIME", help="ISO time (2026-05-01T09:00) or relative (30m, 2h, 7d)")
    p.add_argument("--until", metavar="TIME", help="ISO time or relative, like --since")
    p.add_argument("--unknowns", action="store_true", help="only tracks that stayed unknown")
    p.add_argument("--limit", type=int, metavar="N", help="at most N tracks (the oldest first)")
    p.add_argument("--tracks", action="store_true", help="one line per track instead of one per person")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="every track as one JSON object per line")
    out.add_argument("--csv", action="store_true", help="every track as a CSV row (with a header)")
    p.set_defaults(func=run)
    _register_strangers(p)


def _store_options(p: argparse.ArgumentParser) -> None:
    """--history / --url / --config on a sub-command too: unset ones leave the parent's values (SUPPRESS)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--history", metavar="FILE", default=argparse.SUPPRESS,
                       help="the SQLite file a run wrote with --history")
    where.add_argument("--url", metavar="URL", default=argparse.SUPPRESS, help="sqlite:///FILE or postgresql://...")
    p.add_argument("--config", default=argparse.SUPPRESS, help="read history.url from this YAML config")


def _register_strangers(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="history_action", metavar="{strangers,name,prune}")
    s = sub.add_parser("strangers", help="unknown people remembered across runs and cameras, and how often seen",
                       description="One line per stranger id: first and last seen, the tracks (times seen) in the "
                                   "window, the cameras, the name once given.")
    _store_options(s)
    s.add_argument("--since", metavar="TIME", default=argparse.SUPPRESS,
                   help="only tracks since (ISO time or 30m, 2h, 7d): 'seen N times this week' is --since 7d")
    s.add_argument("--until", metavar="TIME", default=argparse.SUPPRESS, help="ISO time or relative, like --since")
    named = s.add_mutually_exclusive_group()
    named.add_argument("--named", action="store_true", help="only strangers already named")
    named.add_argument("--unnamed", action="store_true", help="only strangers not named yet")
    s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object per stranger")
    s.set_defaults(func=run_strangers)
    n = sub.add_parser("name", help="name a stranger: every track of theirs in the history gets the name",
                       description="Name a stranger's whole history (every track with that stranger id), and with "
                                   "--enroll add their stored best embeddings to a gallery so runs recognise them.")
    n.add_argument("stranger", metavar="STRANGER", help="a stranger id, such as stranger-000123")
    n.add_argument("name", metavar="NAME", help="the person's name")
    _store_options(n)
    n.add_argument("--enroll", metavar="GALLERY", type=Path,
                   help="also enroll the stranger's stored best embeddings (of up to 10 tracks) into this gallery")
    n.set_defaults(func=run_name)
    history_prune.add_parser(sub, _store_options, store_url)


def store_url(args: argparse.Namespace) -> str:
    if args.history:
        return str(args.history)
    if args.url:
        return str(args.url)
    if args.config:
        from stream.config.schema import load_config

        url = load_config(Path(args.config)).history.url
        if url:
            return url
        raise FacestreamError(f"{args.config}: history.url is not set")
    raise FacestreamError("history: say which store: --history FILE, --url URL or --config FILE")


def run(args: argparse.Namespace) -> int:
    from stream.history.store import HistoryStore

    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    if args.limit is not None and args.limit < 1:
        raise FacestreamError(f"{args.limit}: --limit must be at least 1")
    if args.who and args.unknowns:
        raise FacestreamError("--who and --unknowns: a named person is not unknown; give one of them")
    with HistoryStore.open(store_url(args), create=False) as store:
        rows = store.tracks(identity=args.who, source=args.camera, since=since, until=until,
                            unknown=True if args.unknowns else None, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        if rows:
            writer.writerow(list(asdict(rows[0])))
        for row in rows:
            writer.writerow(list(asdict(row).values()))
    elif args.tracks:
        print_tracks(rows)
    else:
        print_people(rows)
    return 0


def when(ts: float) -> str:
    """A date and time in local time, or a position in a file when its start was not known."""
    if abs(ts) < PTS_ONLY:
        return f"+{int(ts // 3600)}:{int(ts % 3600 // 60):02d}:{ts % 60:04.1f}"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def run_strangers(args: argparse.Namespace) -> int:
    from stream.history.store import HistoryStore

    since = parse_time(args.since) if getattr(args, "since", None) else None
    until = parse_time(args.until) if getattr(args, "until", None) else None
    named = True if args.named else False if args.unnamed else None
    with HistoryStore.open(store_url(args), create=False) as store:
        found = store.strangers(since=since, until=until, named=named)
    if getattr(args, "json", False):
        for summary in found:
            print(json.dumps(asdict(summary)))
        return 0
    if not found:
        print("no strangers")
        return 0
    _table(["stranger", "seen", "first seen", "last seen", "cameras", "name"],
           [[s.stranger_id, str(s.tracks), when(s.first_seen), when(s.last_seen), ",".join(s.sources), s.name or ""]
            for s in found])
    return 0


def run_name(args: argparse.Namespace) -> int:
    from stream.history.store import HistoryStore
    from stream.history.strangers import stranger_embeddings, stranger_number
    from stream.recognize.names import check_name

    stranger_number(args.stranger)  # a malformed id or name is refused before the store is opened
    name = check_name(args.name)
    with HistoryStore.open(store_url(args), create=False) as store:
        enroll = None
        if args.enroll is not None:  # everything that can fail is checked before the history changes
            embeddings, labels, model_name = stranger_embeddings(store, args.stranger)
            enroll = (embeddings, labels, _gallery_manifest(args.enroll, model_name))
        renamed = store.name_stranger(args.stranger, name)
    line = f"{args.stranger}: named {name}: {renamed} track(s)"
    if enroll is not None:
        from stream.recognize.gallery import edit_gallery

        embeddings, labels, manifest = enroll
        with edit_gallery(args.enroll, manifest) as gallery:
            gallery.add(name, embeddings, labels)
        line += f"; enrolled {len(embeddings)} embedding(s) into {args.enroll}"
    print(line)
    return 0


def _gallery_manifest(gallery: Path, model_name: str):
    """The manifest of the model the stranger's tracks were embedded with; a gallery of another model is
    refused (its header says which) before anything is written."""
    from stream.models.store import load_model
    from stream.recognize.gallery import Gallery

    manifest = load_model(model_name).manifest
    if gallery.exists():
        Gallery.for_append(gallery, manifest)
    return manifest


def _table(header: list[str], lines: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    for line in [header, *lines]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())


def print_people(rows: list[TrackRow]) -> None:
    if not rows:
        print("no tracks")
        return
    people: dict[str, list[TrackRow]] = {}
    for row in rows:
        people.setdefault(row.identity or row.stranger_id or "(unknown)", []).append(row)  # a stranger is someone
    lines = []
    for name, tracks in sorted(people.items(), key=lambda kv: min(t.started_at for t in kv[1])):
        seconds = sum(max(t.ended_at - t.started_at, 0.0) for t in tracks)
        lines.append([name, str(len(tracks)), when(min(t.started_at for t in tracks)),
                      when(max(t.ended_at for t in tracks)), f"{seconds:.1f}",
                      ",".join(sorted({t.source for t in tracks}))])
    _table(["who", "tracks", "first seen", "last seen", "seconds", "cameras"], lines)


def print_tracks(rows: list[TrackRow]) -> None:
    if not rows:
        print("no tracks")
        return
    lines = [[str(r.id), when(r.started_at), when(r.ended_at), r.source, r.identity or r.stranger_id or "(unknown)",
              "" if r.score is None else f"{r.score:.2f}", str(r.faces),
              f"{r.video}@{r.start_pts:.1f}s" if r.video else ""] for r in rows]
    _table(["row", "start", "end", "camera", "who", "score", "faces", "where"], lines)
