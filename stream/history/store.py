"""The history store: every finished track and every identity decision of every run, in one database.

SQLite (WAL, one file) by default, PostgreSQL for a site or several runs at once: one code path on
SQLAlchemy Core; the schema is Alembic's (stream/history/migrations), upgraded on open. Embeddings
are float32 little-endian blobs (the mean, and up to five best crops' by quality) and the best
crop's JPEG thumbnail sits in the same row: measured at ~5 KB a track, so in the database it costs
less than a file beside it (a file takes at least a 4 KB block plus its inode) and one file to copy,
prune or erase is one file (docs/history.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stream.errors import FacestreamError
from stream.history import tables as T
from stream.sources.credentials import mask_credentials


@dataclass
class TrackRow:
    """One finished track, as stored."""

    id: int
    run_id: str
    origin: str | None
    source: str
    track_id: int
    started_at: float  # unix seconds (archives: the file's start time when known, else 0) + pts
    ended_at: float
    start_pts: float
    end_pts: float
    first_frame: int
    last_frame: int
    video: str | None  # the file for archives (None for live)
    identity: str | None
    score: float | None
    distance: float | None
    detector_score: float  # mean detector score over the embedded faces
    faces: int  # embeddings that went into the mean
    model: str
    embedding_space: str
    dim: int
    stranger_id: str | None = None  # stranger-000123: an unknown remembered across runs and cameras


@dataclass
class NewTrack:
    """A track to write: TrackRow's fields but ``id``, plus its embeddings and thumbnail."""

    run_id: str
    origin: str | None
    source: str
    track_id: int
    started_at: float
    ended_at: float
    start_pts: float
    end_pts: float
    first_frame: int
    last_frame: int
    video: str | None
    identity: str | None
    score: float | None
    distance: float | None
    detector_score: float
    faces: int
    model: str
    embedding_space: str
    dim: int
    mean: np.ndarray  # (dim,) float32
    best: np.ndarray  # (k <= 5, dim) float32, best crops by quality
    thumbnail: bytes | None = None  # JPEG of the best crop
    stranger_id: str | None = None


@dataclass
class Decision:
    """One identity decision of a track (the ``identity`` events), written as it is made."""

    run_id: str
    source: str
    track_id: int
    ts: float
    pts: float | None
    frame: int | None
    identity: str | None
    score: float | None
    distance: float | None
    reason: str | None = None


@dataclass
class RunRow:
    id: str
    started_at: float
    ended_at: float | None
    origin: str | None
    kind: str  # "live" or "archive"
    model: str | None


@dataclass
class HistoryErased:
    """What ``HistoryStore.forget`` deleted: rows of each kind."""

    tracks: int  # with their means, best embeddings and thumbnails (the same rows and track_means)
    decisions: int
    strangers: int
    scrubbed: bool = True  # the freed bytes were overwritten (SQLite) or vacuumed (PostgreSQL) too


@dataclass
class StrangerSummary:
    """One stranger over a window (``HistoryStore.strangers``): their tracks in it, "seen N times"."""

    stranger_id: str  # stranger-000123
    name: str | None  # set once named (``name_stranger``); their tracks carry it as identity
    first_seen: float
    last_seen: float
    tracks: int
    sources: list[str]
    best_track_id: int  # the row of their most embedded track: its thumbnail is their face


_ROW_FIELDS = tuple(f.name for f in fields(TrackRow))
_NEW_COLUMNS = tuple(f.name for f in fields(NewTrack) if f.name not in ("mean", "best", "thumbnail"))
_MEAN_COLUMNS = tuple(c.name for c in T.track_means.columns if c.name != "id")


def to_blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").reshape(-1, dim)


def database_url(url: str | Path) -> str:
    """A path, ``sqlite:///path`` or ``postgresql://...`` -> the SQLAlchemy URL (psycopg 3 for PostgreSQL)."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("postgresql+", "sqlite:")):
        return text
    if "://" in text:
        raise FacestreamError(f"{mask_credentials(text)}: not a history store (a file, sqlite:///FILE or postgresql://...)")
    return f"sqlite:///{Path(text).expanduser()}"


class HistoryStore:
    """Reads and writes one history database. Not shared between threads: each opens its own."""

    def __init__(self, engine: Any, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect: str = engine.dialect.name

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | Path, *, create: bool = True) -> HistoryStore:
        """Open (and create or upgrade to the current schema, unless ``create`` is False) a store."""
        from stream.history.engine import make_engine
        from stream.history.migrate import upgrade

        full = database_url(url)
        shown = mask_credentials(str(url))  # a PostgreSQL password never reaches an error line
        if full.startswith("sqlite:///") and not create:
            path = Path(full[len("sqlite:///"):])
            if not path.is_file():
                raise FacestreamError(f"{shown}: no such history store")
        engine = make_engine(full, shown)
        try:
            upgrade(engine, shown, create)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, full)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------
    def begin_run(self, run: RunRow) -> None:
        """Record a run (idempotent: a restarted publisher of the same run keeps the first row)."""
        with self.engine.begin() as conn:
            have = conn.execute(T.runs.select().where(T.runs.c.id == run.id)).first()
            if have is None:
                conn.execute(T.runs.insert().values(**asdict(run)))

    def end_run(self, run_id: str, ended_at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(T.runs.update().where(T.runs.c.id == run_id).values(ended_at=ended_at))

    def write(self, tracks: Sequence[NewTrack], decisions: Sequence[Decision] = ()) -> list[int]:
        """Tracks and decisions in one transaction (one commit for a batch); the tracks' row ids."""
        ids: list[int] = []
        rows = []
        for track in tracks:
            values = {name: getattr(track, name) for name in _NEW_COLUMNS}
            best = np.asarray(track.best, dtype=np.float32).reshape(-1, track.dim)
            values.update(mean=to_blob(track.mean), best=to_blob(best), best_count=len(best),
                          thumbnail=track.thumbnail)
            rows.append(values)
        with self.engine.begin() as conn:
            if rows:  # one multi-row INSERT ... RETURNING (SQLAlchemy's insertmanyvalues), ids in row order
                query = T.tracks.insert().returning(T.tracks.c.id, sort_by_parameter_order=True)
                ids = [int(r[0]) for r in conn.execute(query, rows)]
                conn.execute(T.track_means.insert(), [
                    {"id": i, **{name: row[name] for name in _MEAN_COLUMNS}} for i, row in zip(ids, rows)])
            if decisions:
                conn.execute(T.decisions.insert(), [asdict(d) for d in decisions])
        return ids

    def write_tracks(self, tracks: list[NewTrack]) -> list[int]:
        return self.write(tracks)

    def write_decisions(self, decisions: Sequence[Decision]) -> None:
        self.write((), decisions)

    # -- reading ---------------------------------------------------------------------------------
    def tracks(self, *, identity: str | None = None, source: str | None = None, since: float | None = None,
               until: float | None = None, unknown: bool | None = None, limit: int | None = None,
               run_id: str | None = None) -> list[TrackRow]:
        """Tracks that overlap [since, until], oldest first. ``unknown``: True only unknowns, False only named."""
        columns = [T.tracks.c[name] for name in _ROW_FIELDS]
        query = T.tracks.select().with_only_columns(*columns)
        query = track_filter(query, identity=identity, source=source, since=since, until=until, unknown=unknown,
                          run_id=run_id)
        query = query.order_by(T.tracks.c.started_at, T.tracks.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [TrackRow(**row._mapping) for row in conn.execute(query)]

    def get(self, ids: Sequence[int]) -> list[TrackRow]:
        """The rows of ``ids``, in that order (ids not stored are left out)."""
        wanted = [int(i) for i in ids]
        if not wanted:
            return []
        columns = [T.tracks.c[name] for name in _ROW_FIELDS]
        found: dict[int, TrackRow] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
                chunk = wanted[start:start + 900]
                query = T.tracks.select().with_only_columns(*columns).where(T.tracks.c.id.in_(chunk))
                for row in conn.execute(query):
                    found[row.id] = TrackRow(**row._mapping)
        return [found[i] for i in wanted if i in found]

    def thumbnail(self, track_row_id: int) -> bytes | None:
        query = T.tracks.select().with_only_columns(T.tracks.c.thumbnail).where(T.tracks.c.id == int(track_row_id))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None or row[0] is None else bytes(row[0])

    def embeddings(self, track_row_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """One track's (mean (dim,), best (k, dim))."""
        t = T.tracks.c
        query = T.tracks.select().with_only_columns(t.mean, t.best, t.dim).where(t.id == int(track_row_id))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return from_blob(row.mean, row.dim)[0], from_blob(row.best, row.dim)

    def iter_embeddings(self, embedding_space: str, *, since: float | None = None, until: float | None = None,
                        source: str | None = None, kind: Literal["mean", "best"] = "mean",
                        min_faces: int = 0, min_detector_score: float = 0.0, after: int = 0,
                        block: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Blocks of (ids int64 (n,), embeddings float32 (n, dim)) of one embedding space, by row id.

        ``kind="mean"``: one row per track, read from the narrow ``track_means``; ``"best"``: one row per
        stored best embedding (ids repeat). Pages by id, so a block's memory is bounded however large
        the store."""
        table = T.track_means if kind == "mean" else T.tracks
        t = table.c
        column = t.mean if kind == "mean" else t.best
        last = after  # row ids past it only: what a held index lacks
        with self.engine.connect() as conn:
            while True:
                query = (table.select().with_only_columns(t.id, column, t.dim)
                         .where(t.embedding_space == embedding_space, t.id > last))
                query = track_filter(query, source=source, since=since, until=until, table=table)
                if min_faces:
                    query = query.where(t.faces >= min_faces)
                if min_detector_score:
                    query = query.where(t.detector_score >= min_detector_score)
                rows = conn.execute(query.order_by(t.id).limit(block)).all()
                if not rows:
                    return
                last = rows[-1][0]
                dim = rows[0][2]
                if kind == "mean":
                    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                    embs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
                else:
                    parts = [from_blob(r[1], r[2]) for r in rows]
                    ids = np.repeat(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                                    [len(p) for p in parts])
                    embs = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
                yield ids, embs.astype(np.float32, copy=False)
                if len(rows) < block:
                    return

    def decisions(self, run_id: str, source: str, track_id: int) -> list[Decision]:
        d = T.decisions.c
        query = (T.decisions.select().where(d.run_id == run_id, d.source == source, d.track_id == track_id)
                 .order_by(d.ts, d.id))
        names = [f.name for f in fields(Decision)]
        with self.engine.connect() as conn:
            return [Decision(**{n: row._mapping[n] for n in names}) for row in conn.execute(query)]

    def runs(self) -> list[RunRow]:
        names = [f.name for f in fields(RunRow)]
        with self.engine.connect() as conn:
            return [RunRow(**{n: row._mapping[n] for n in names})
                    for row in conn.execute(T.runs.select().order_by(T.runs.c.started_at))]

    def count(self) -> int:
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(T.tracks)).scalar_one())

    # -- strangers (stream/history/strangers.py) ----------------------------------------------------
    def new_stranger(self, embedding_space: str, created_at: float) -> int:
        """A new ``strangers`` row, committed; its number (``stranger-{number:06d}``)."""
        from stream.history import strangers

        return strangers.new_stranger(self.engine, embedding_space, created_at)

    def strangers(self, *, since: float | None = None, until: float | None = None,
                  named: bool | None = None) -> list[StrangerSummary]:
        """Strangers with tracks overlapping [since, until], most recently seen first, each with the count
        of those tracks ("seen 5 times this week"). ``named``: True only named ones, False only unnamed."""
        from stream.history import strangers

        return [StrangerSummary(**row) for row in strangers.summaries(self.engine, since=since, until=until,
                                                                      named=named)]

    def name_stranger(self, stranger_id: str, name: str) -> int:
        """Name a stranger's whole history: every track of ``stranger_id`` gets identity ``name`` (checked
        by stream/recognize/names.py) and the stranger row keeps it; the number of tracks renamed.
        An id the store does not hold is one line (FacestreamError)."""
        from stream.history import strangers

        return strangers.name_stranger(self.engine, stranger_id, name)

    # -- erasing ---------------------------------------------------------------------------------
    def forget(self, name: str) -> HistoryErased:
        """Delete everything stored of ``name``, in one transaction: their tracks (thumbnails and
        embeddings are in those rows and track_means), the tracks of strangers named as them, every
        decision of those tracks or naming them, and the stranger rows of that name; then the freed
        bytes are overwritten (SQLite) or vacuumed (PostgreSQL): stream/history/retention.py."""
        from stream.history import retention

        erased = retention.forget(self.engine, name)
        if erased.tracks:  # the search cache beside the store holds their means: dropped, rebuilt by a search
            from stream.history.search_cache import discard

            discard(self.url)
        return HistoryErased(erased.tracks, erased.decisions, erased.strangers, erased.scrubbed)

    def prune(self, *, keep_days: float | None, max_bytes: int | None, now: float | None = None) -> int:
        """Delete tracks older than ``keep_days`` and then the oldest until the data is under ``max_bytes``
        (with their decisions, and strangers left without tracks); the number of tracks deleted."""
        from stream.history import retention

        pruned = retention.prune(self.engine, keep_days=keep_days, max_bytes=max_bytes, now=now)
        if pruned:  # what the search cache holds of them goes too
            from stream.history.search_cache import discard

            discard(self.url)
        return pruned


def track_filter(query: Any, *, identity: str | None = None, source: str | None = None, since: float | None = None,
              until: float | None = None, unknown: bool | None = None, run_id: str | None = None,
              table: Any = T.tracks) -> Any:
    t = table.c
    if identity is not None:
        query = query.where(t.identity == identity)
    if source is not None:
        query = query.where(t.source == source)
    if since is not None:
        query = query.where(t.ended_at >= since)
    if until is not None:
        query = query.where(t.started_at <= until)
    if unknown is True:
        query = query.where(t.identity.is_(None))
    elif unknown is False:
        query = query.where(t.identity.is_not(None))
    if run_id is not None:
        query = query.where(t.run_id == run_id)
    return query
