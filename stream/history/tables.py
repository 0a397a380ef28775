"""The history schema as SQLAlchemy Core tables: what the code reads and writes.

The migrations (stream/history/migrations/versions) create and change these tables; a change here
comes with a new migration, and tests/history/test_migrations.py checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", String(200), primary_key=True),  # the run directory's name: unique per run
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("origin", String(200)),  # the pipeline of a site, or null
    Column("kind", String(20), nullable=False),  # live or archive
    Column("model", String(200)),
)

tracks = Table(
    "tracks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("origin", String(200)),
    Column("source", String(200), nullable=False),
    Column("track_id", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Column("start_pts", Float, nullable=False),
    Column("end_pts", Float, nullable=False),
    Column("first_frame", Integer, nullable=False),
    Column("last_frame", Integer, nullable=False),
    Column("video", Text),
    Column("identity", String(200)),
    Column("score", Float),
    Column("distance", Float),
    Column("detector_score", Float, nullable=False),
    Column("faces", Integer, nullable=False),
    Column("model", String(200), nullable=False),
    Column("embedding_space", String(200), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("mean", LargeBinary, nullable=False),  # float32 little-endian (dim,)
    Column("best", LargeBinary, nullable=False),  # float32 little-endian (best_count, dim)
    Column("best_count", Integer, nullable=False),
    Column("thumbnail", LargeBinary),  # JPEG of the best crop
    Column("stranger_id", String(40)),  # stranger-000123 for an unknown remembered across runs (strangers)
    Index("ix_tracks_started_at", "started_at"),
    Index("ix_tracks_identity_started", "identity", "started_at"),
    Index("ix_tracks_source_started", "source", "started_at"),
    Index("ix_tracks_space_id", "embedding_space", "id"),
    Index("ix_tracks_run_track", "run_id", "source", "track_id"),
    Index("ix_tracks_stranger", "stranger_id"),
    Index("ix_tracks_space_ended", "embedding_space", "ended_at"),
    Index("ix_tracks_day", "started_at", "ended_at", "source", "identity", "stranger_id", "faces", "detector_score"),
)

#: Only what search reads, one row per track (same id): reading the wide rows bound search (migration 0002).
track_means = Table(
    "track_means", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("embedding_space", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Column("faces", Integer, nullable=False),
    Column("detector_score", Float, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("mean", LargeBinary, nullable=False),
    Index("ix_track_means_space_id", "embedding_space", "id"),
)

#: Stable stranger ids: ``stranger-{id:06d}``, handed out once per stranger, across runs and cameras.
strangers = Table(
    "strangers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("embedding_space", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("name", String(200)),
    sqlite_autoincrement=True,  # a forgotten stranger's number is never handed out again
)

decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("track_id", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("pts", Float),
    Column("frame", Integer),
    Column("identity", String(200)),
    Column("score", Float),
    Column("distance", Float),
    Column("reason", String(100)),
    Index("ix_decisions_track", "run_id", "source", "track_id"),
    Index("ix_decisions_identity_ts", "identity", "ts"),
)
