"""``facestream history``: who was seen, where and when, from a run's history store."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING

from stream.errors import FacestreamError

if TYPE_CHECKING:
    from stream.history.store import TrackRow

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
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


def parse_time(text: str, now: float | None = None) -> float:
    """``2h`` (before now) or an ISO time (local time when it has no offset) -> unix seconds."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise FacestreamError(f"{text}: not a time (an ISO time such as 2026-05-01T09:00, or 30m, 2h, 7d)") from None


def store_url(args: argparse.Namespace) -> str:
    if args.history:
        return str(args.history)
    if args.url:
        return str(args.url)
    if args.config:
        from pathlib import Path

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
        people.setdefault(row.identity or "(unknown)", []).append(row)
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
    lines = [[str(r.id), when(r.started_at), when(r.ended_at), r.source, r.identity or "(unknown)",
              "" if r.score is None else f"{r.score:.2f}", str(r.faces),
              f"{r.video}@{r.start_pts:.1f}s" if r.video else ""] for r in rows]
    _table(["row", "start", "end", "camera", "who", "score", "faces", "where"], lines)
