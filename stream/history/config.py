"""``history.*``: where a run keeps what it saw (stream/history/store.py) and how it writes it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class HistoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    url: str | None = Field(
        default=None,
        description="keep every track and identity decision in this store: a file (SQLite, WAL), sqlite:///FILE, "
                    "or postgresql://user@host/db (a site or several runs at once; needs facestream[history-pg])")
    queue: int = Field(default=5000, ge=1, le=1_000_000,
                       description="rows (tracks and decisions) waiting to be written; when full the oldest are "
                                   "dropped, counted")
    commit_every_s: float = Field(default=0.5, gt=0, le=60,
                                  description="seconds between commits: a killed run loses at most this much")
    commit_rows: int = Field(default=200, ge=1, le=100_000, description="commit early once this many rows wait")
    drain_s: float = Field(default=10.0, ge=0, le=3600,
                           description="seconds the run's end waits for queued rows before counting them dropped")
    best_crops: int = Field(default=5, ge=1, le=20,
                            description="best embeddings (by the voter's quality) kept per track for search")
    thumbnail_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality of each track's thumbnail")
    file_start: str = Field(
        default="none",
        description="a recorded file's wall-clock start, added to its pts: none (times are the pts alone), mtime "
                    "(the file's modification time), or an ISO time such as 2026-05-01T09:00:00+02:00")

    @field_validator("file_start")
    @classmethod
    def _start(cls, value: str) -> str:
        if value in ("none", "mtime"):
            return value
        from datetime import datetime

        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not none, mtime or an ISO time") from None
        return value
