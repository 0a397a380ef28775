"""`facestream search PHOTO`: every recorded track of the person in a photo, nearest first."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from stream.cli.common import add_model_arg
from stream.errors import FacestreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search", help="find a face from a photo in the history (live runs and archives)",
        description="Embed the photo's face (the largest, when it has several) and list every stored track whose "
                    "mean embedding lies within the model's photo-to-track threshold, nearest first.")
    p.add_argument("photo", type=Path, metavar="PHOTO")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--history", type=Path, metavar="FILE", help="the SQLite history file of `run --history`")
    where.add_argument("--url", metavar="URL", help="a history store URL: sqlite:///FILE or postgresql://...")
    add_model_arg(p)
    p.add_argument("--since", metavar="TIME", help="only tracks seen since: ISO time, unix seconds, or 2h, 7d ago")
    p.add_argument("--until", metavar="TIME", help="only tracks seen until: ISO time, unix seconds, or 2h, 7d ago")
    p.add_argument("--camera", metavar="SOURCE", help="only this source (a camera's name, or a video's)")
    p.add_argument("--limit", type=_positive_int, default=None, help="at most this many tracks (default 50)")
    p.add_argument("--threshold", type=_positive_float, default=None,
                   help="unit-sphere distance to a track's mean embedding (default: the model's measured one)")
    p.add_argument("--min-faces", type=int, default=None, metavar="N",
                   help="only tracks embedded at least N times (default 5: shorter ones are mostly false detections)")
    p.add_argument("--min-score", type=float, default=None, metavar="S",
                   help="only tracks whose mean detector score reaches S (default 0.7)")
    p.add_argument("--all-tracks", action="store_true", help="search every stored track (--min-faces 0 --min-score 0)")
    p.add_argument("--thumbs", type=Path, metavar="DIR", help="write each hit's thumbnail to DIR/<row id>.jpg")
    p.add_argument("--json", action="store_true", help="one JSON object per hit")
    p.add_argument("--no-cache", action="store_true",
                   help="read the store's track means, not the cache kept beside a SQLite store (<file>.search/)")
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be > 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be > 0")
    return value


def _iso(ts: float) -> str | None:
    # archives with no known start time are stored at their pts from 0: those have no wall-clock time
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts > 1e8 else None


def run(args: argparse.Namespace) -> int:
    from stream.history.search import (
        DEFAULT_LIMIT,
        MIN_DETECTOR_SCORE,
        MIN_FACES,
        iter_store_blocks,
        photo_query,
        photo_to_track_threshold,
        search_blocks,
        searchable,
    )
    from stream.history.search_cache import fresh_segments, search_segments
    from stream.history.store import HistoryStore
    from stream.history.times import parse_time
    from stream.models.store import load_model

    if not args.photo.is_file():
        raise FacestreamError(f"{args.photo}: no such photo")
    args.since = parse_time(args.since, what="--since") if args.since else None  # checked before any model loads
    args.until = parse_time(args.until, what="--until") if args.until else None
    where = args.url or args.history
    model = load_model(args.model)
    manifest = model.manifest
    threshold = args.threshold or photo_to_track_threshold(model.name, manifest.metric, manifest.threshold)
    limit = args.limit or DEFAULT_LIMIT
    min_faces = 0 if args.all_tracks else MIN_FACES if args.min_faces is None else args.min_faces
    min_score = 0.0 if args.all_tracks else MIN_DETECTOR_SCORE if args.min_score is None else args.min_score
    with HistoryStore.open(where, create=False) as store:
        if store.count() == 0:
            raise FacestreamError(f"{where}: the history store is empty")
        query = photo_query(args.photo, model)
        if query.faces > 1:
            print(f"facestream: {args.photo}: {query.faces} faces found; searching for the largest", file=sys.stderr)
        space = manifest.embedding_space
        window = {"since": args.since, "until": args.until, "source": args.camera}
        segments = None if args.no_cache else fresh_segments(store, space)
        if segments is not None:
            hits = search_segments(segments, query.vector, threshold, limit, min_faces=min_faces,
                                   min_detector_score=min_score, **window)
        else:  # the quality filter is part of the query: only solid tracks' means are read
            blocks = iter_store_blocks(store, space, min_faces=min_faces, min_detector_score=min_score, **window)
            hits = search_blocks(query.vector, blocks, threshold, limit)
        if not hits and next(iter_store_blocks(store, space, block=1, **window), None) is None:
            # no track of this space in the window: another model's store, or an empty window
            present = store.tracks(limit=1, since=args.since, until=args.until, source=args.camera)
            if present:
                raise FacestreamError(f"{where}: holds tracks of model {present[0].model} (embedding space "
                                      f"{present[0].embedding_space}), not {space}: search with "
                                      f"--model {present[0].model}")
        rows = {row.id: row for row in store.get([h.id for h in hits]) if searchable(row, min_faces, min_score)}
        hits = [h for h in hits if h.id in rows]
        if args.thumbs:
            args.thumbs.mkdir(parents=True, exist_ok=True)
        for hit in hits:
            row = rows[hit.id]
            thumb = None
            if args.thumbs:
                data = store.thumbnail(hit.id)
                if data:
                    thumb = args.thumbs / f"{hit.id}.jpg"
                    thumb.write_bytes(data)
            record = {
                "id": row.id, "distance": round(hit.distance, 4), "camera": row.source, "track_id": row.track_id,
                "identity": row.identity, "started_at": row.started_at, "ended_at": row.ended_at,
                "start": _iso(row.started_at), "end": _iso(row.ended_at), "video": row.video,
                "start_pts": row.start_pts, "end_pts": row.end_pts, "run_id": row.run_id,
                "thumbnail": str(thumb) if thumb else None,
            }
            print(json.dumps(record) if args.json else _line(record), flush=True)
    if not args.json:
        print(f"{len(hits)} track(s) within {threshold:g} of {args.photo}", file=sys.stderr)
    return 0


def _line(r: dict) -> str:
    where = f"{r['video']} pts {r['start_pts']:.2f}-{r['end_pts']:.2f}s" if r["video"] else \
        f"{r['start'] or r['started_at']} .. {r['end'] or r['ended_at']}"
    who = r["identity"] or "unknown"
    thumb = f"  {r['thumbnail']}" if r["thumbnail"] else ""
    return f"{r['distance']:.3f}  {r['camera']}  track {r['track_id']}  {who}  {where}  (#{r['id']}){thumb}"
