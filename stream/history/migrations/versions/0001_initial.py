"""The first history schema: runs, tracks (with embeddings and thumbnail), decisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("origin", sa.String(200)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200)),
    )
    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("origin", sa.String(200)),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=False),
        sa.Column("start_pts", sa.Float, nullable=False),
        sa.Column("end_pts", sa.Float, nullable=False),
        sa.Column("first_frame", sa.Integer, nullable=False),
        sa.Column("last_frame", sa.Integer, nullable=False),
        sa.Column("video", sa.Text),
        sa.Column("identity", sa.String(200)),
        sa.Column("score", sa.Float),
        sa.Column("distance", sa.Float),
        sa.Column("detector_score", sa.Float, nullable=False),
        sa.Column("faces", sa.Integer, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("embedding_space", sa.String(200), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("mean", sa.LargeBinary, nullable=False),
        sa.Column("best", sa.LargeBinary, nullable=False),
        sa.Column("best_count", sa.Integer, nullable=False),
        sa.Column("thumbnail", sa.LargeBinary),
    )
    op.create_index("ix_tracks_started_at", "tracks", ["started_at"])
    op.create_index("ix_tracks_identity_started", "tracks", ["identity", "started_at"])
    op.create_index("ix_tracks_source_started", "tracks", ["source", "started_at"])
    op.create_index("ix_tracks_space_id", "tracks", ["embedding_space", "id"])
    op.create_index("ix_tracks_run_track", "tracks", ["run_id", "source", "track_id"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("pts", sa.Float),
        sa.Column("frame", sa.Integer),
        sa.Column("identity", sa.String(200)),
        sa.Column("score", sa.Float),
        sa.Column("distance", sa.Float),
        sa.Column("reason", sa.String(100)),
    )
    op.create_index("ix_decisions_track", "decisions", ["run_id", "source", "track_id"])
    op.create_index("ix_decisions_identity_ts", "decisions", ["identity", "ts"])


def downgrade() -> None:
    op.drop_table("decisions")
    op.drop_table("tracks")
    op.drop_table("runs")
