"""Read-only questions the History page asks of a store: who was seen, which tracks, a day's timeline.

Answered in SQL (grouped, windowed) rather than by reading every row into Python: a store of a site
holds millions of tracks, and the page asks on every filter change. Kept apart from store.py, which
writes; every function here takes an open ``HistoryStore`` and only reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from sqlalchemy import and_, case, func, literal, select

from stream.errors import FacestreamError
from stream.history import tables as T
from stream.history.store import HistoryStore, TrackRow

#: Times below this are a recorded file's pts from 0 (no wall-clock start known), not unix seconds
#: (1e8 s is March 1973: no live run is stored then).
PTS_CLOCK_BELOW = 1e8
#: Intervals one timeline answer carries at most: a page draws them all, a browser slows past this.
MAX_INTERVALS = 5000

_ROW_FIELDS = tuple(f.name for f in fields(TrackRow))


@dataclass
class PersonSummary:
    """Everyone seen in a window: a named person, a remembered stranger, or all other unknowns together."""

    key: str  # what /api/history/tracks?who= takes: the name, the stranger id, or "" for other unknowns
    kind: str  # "person", "stranger" or "unknown"
    first_seen: float
    last_seen: float
    tracks: int
    cameras: list[str]
    best_track_id: int | None  # the track whose thumbnail shows them best


def _who_key(t: Any) -> Any:
    """One group per person: a named track by its name (a named stranger too), else its stranger id, else ''."""
    return case((t.identity.is_not(None), literal("p:") + t.identity),
                (t.stranger_id.is_not(None), literal("s:") + t.stranger_id), else_=literal("u:"))


def _window(query: Any, t: Any, since: float | None, until: float | None, source: str | None) -> Any:
    if since is not None:
        query = query.where(t.ended_at >= since)
    if until is not None:
        query = query.where(t.started_at <= until)
    if source is not None:
        query = query.where(t.source == source)
    return query


def people(store: HistoryStore, *, since: float | None = None, until: float | None = None,
           source: str | None = None) -> list[PersonSummary]:
    """Who was seen in [since, until] (on one camera), named people first, then strangers, then unknowns."""
    t = T.tracks.c
    key = _who_key(t).label("who")
    # per person and camera in one pass (each pass reads the window's rows: the cost of this query)
    groups = _window(select(key, t.source, func.count().label("n"), func.min(t.started_at).label("first"),
                            func.max(t.ended_at).label("last")), t, since, until, source).group_by(key, t.source)
    # the best thumbnail: a solid track (embedded often, high detector score), one per person, by a window
    # function (SQLite >= 3.25 and PostgreSQL): no row is read into Python that is not shown. Whether the
    # thumbnail is there is not asked: in SQLite that reads every row's thumbnail pages (every stored track
    # has one; the page hides one that is missing)
    rank = func.row_number().over(partition_by=key, order_by=((t.faces >= 5).desc(), t.detector_score.desc(),
                                                                t.faces.desc(), t.id.desc()))
    ranked = _window(select(key, t.id.label("id"), rank.label("rank")), t, since, until, source).subquery()
    best = select(ranked.c.who, ranked.c.id).where(ranked.c.rank == 1)
    with store.engine.connect() as conn:
        found = conn.execute(groups).all()
        best_of = dict(conn.execute(best).all())
    merged: dict[str, PersonSummary] = {}
    for who, camera, n, first, last in found:
        kind = {"p": "person", "s": "stranger", "u": "unknown"}[who[0]]
        have = merged.get(who)
        if have is None:
            merged[who] = PersonSummary(who[2:], kind, float(first), float(last), int(n), [camera], best_of.get(who))
        else:
            have.first_seen, have.last_seen = min(have.first_seen, float(first)), max(have.last_seen, float(last))
            have.tracks += int(n)
            have.cameras = sorted([*have.cameras, camera])
    out = list(merged.values())
    order = {"person": 0, "stranger": 1, "unknown": 2}
    return sorted(out, key=lambda p: (order[p.kind], -p.last_seen if p.kind == "stranger" else 0, p.key.lower()))


def tracks(store: HistoryStore, *, who: str | None = None, source: str | None = None, since: float | None = None,
           until: float | None = None, unknown: bool | None = None, limit: int = 200,
           newest_first: bool = True) -> list[TrackRow]:
    """Tracks in [since, until]: ``who`` a name or a stranger id (``stranger-000123``), ``unknown`` True for
    unnamed tracks only (strangers included), False for named ones; newest first unless asked otherwise."""
    t = T.tracks.c
    query = _window(select(*[t[name] for name in _ROW_FIELDS]), t, since, until, source)
    if who is not None:
        query = query.where(t.identity == who) if not who.startswith("stranger-") else \
            query.where(and_(t.stranger_id == who, t.identity.is_(None)))
    if unknown is True:
        query = query.where(t.identity.is_(None))
    elif unknown is False:
        query = query.where(t.identity.is_not(None))
    order = (t.started_at.desc(), t.id.desc()) if newest_first else (t.started_at, t.id)
    with store.engine.connect() as conn:
        return [TrackRow(**row._mapping) for row in conn.execute(query.order_by(*order).limit(limit))]


def timeline(store: HistoryStore, start: float, end: float, source: str | None = None,
             max_intervals: int = MAX_INTERVALS) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """Per camera, the tracks that overlap [start, end) as intervals clipped to it; and whether any were left
    out (past ``max_intervals``: the longest are kept, the page says so)."""
    t = T.tracks.c
    query = select(t.id, t.source, t.started_at, t.ended_at, t.identity, t.stranger_id, t.video, t.start_pts,
                   t.end_pts).where(t.ended_at >= start, t.started_at < end)
    if source is not None:
        query = query.where(t.source == source)
    length = t.ended_at - t.started_at
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(length.desc(), t.id).limit(max_intervals + 1)).all()
    truncated = len(rows) > max_intervals
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows[:max_intervals], key=lambda r: (r.started_at, r.id)):
        out.setdefault(r.source, []).append({
            "id": r.id, "start": max(r.started_at, start), "end": min(r.ended_at, end),
            "who": r.identity or r.stranger_id, "identity": r.identity, "stranger_id": r.stranger_id,
            "video": r.video, "start_pts": r.start_pts, "end_pts": r.end_pts})
    return dict(sorted(out.items())), truncated


def cameras(store: HistoryStore) -> list[str]:
    """Every source the store has tracks of."""
    with store.engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(select(T.tracks.c.source).distinct()))


def latest(store: HistoryStore) -> float | None:
    """When the newest track ended (None: the store is empty)."""
    with store.engine.connect() as conn:
        value = conn.execute(select(func.max(T.tracks.c.ended_at))).scalar()
    return None if value is None else float(value)


def pts_span(store: HistoryStore) -> float:
    """The end of the longest pts-clocked track (archives with no known start): the width of their timeline."""
    with store.engine.connect() as conn:
        t = T.tracks.c
        value = conn.execute(select(func.max(t.ended_at)).where(t.ended_at < PTS_CLOCK_BELOW)).scalar()
    return float(value or 0.0)


def day_window(day: str, tz: str | None) -> tuple[float, float]:
    """``YYYY-MM-DD`` in time zone ``tz`` (an IANA name; None: UTC) -> [start, end) in unix seconds (a day
    of a clock change is 23 or 25 hours long)."""
    zone = zone_info(tz)
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise FacestreamError(f"day={day}: not a date (YYYY-MM-DD)") from None
    start = datetime.combine(when, time(), zone)
    end = datetime.combine(when + timedelta(days=1), time(), zone)
    return start.timestamp(), end.timestamp()


def day_of(ts: float, tz: str | None) -> str:
    return datetime.fromtimestamp(ts, zone_info(tz)).date().isoformat()


def zone_info(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise FacestreamError(f"tz={tz}: not a time zone (an IANA name such as Europe/Paris)") from None


def mean_blocks_after(store: HistoryStore, embedding_space: str, after: int, *, min_faces: int = 0,
                      min_detector_score: float = 0.0, block: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (ids, mean embeddings) of one space with row id > ``after``, by id: what a held index lacks."""
    return store.iter_embeddings(embedding_space, kind="mean", min_faces=min_faces,
                                 min_detector_score=min_detector_score, after=after, block=block)


def max_track_id(store: HistoryStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.max(T.tracks.c.id))).scalar() or 0)
