"""Strangers remembered, and a narrow table of track means for search.

``strangers`` hands out stable stranger ids (``stranger-000123``) and ``tracks.stranger_id`` ties an
unknown track to one. ``track_means`` repeats, per track, only what search reads (space, camera,
times, quality and the mean): a search that read the wide ``tracks`` rows (thumbnail and best crops
inline) was bound by reading them, measured 1.2 s against 0.34 s for 100k tracks.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "strangers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("embedding_space", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("name", sa.String(200)),  # set once they are named: the tracks carry the name too
        sqlite_autoincrement=True,  # a forgotten stranger's number is never handed out again
    )
    op.add_column("tracks", sa.Column("stranger_id", sa.String(40)))
    op.create_index("ix_tracks_stranger", "tracks", ["stranger_id"])
    op.create_index("ix_tracks_space_ended", "tracks", ["embedding_space", "ended_at"])
    # covers the History page's "who was seen that day": SQLite keeps a row's columns after the
    # thumbnail in its overflow pages, so reading stranger_id from the row walked the thumbnail
    op.create_index("ix_tracks_day", "tracks", ["started_at", "ended_at", "source", "identity", "stranger_id",
                                                "faces", "detector_score"])
    op.create_table(
        "track_means",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # tracks.id
        sa.Column("embedding_space", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=False),
        sa.Column("faces", sa.Integer, nullable=False),
        sa.Column("detector_score", sa.Float, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("mean", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_track_means_space_id", "track_means", ["embedding_space", "id"])
    op.execute("INSERT INTO track_means (id, embedding_space, source, started_at, ended_at, faces, detector_score, "
               "dim, mean) SELECT id, embedding_space, source, started_at, ended_at, faces, detector_score, dim, "
               "mean FROM tracks")


def downgrade() -> None:
    op.drop_table("track_means")
    op.drop_index("ix_tracks_day", "tracks")
    op.drop_index("ix_tracks_space_ended", "tracks")
    op.drop_index("ix_tracks_stranger", "tracks")
    op.drop_column("tracks", "stranger_id")
    op.drop_table("strangers")
