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
    keep_days: float | None = Field(
        default=None, gt=0, le=36_500,
        description="delete tracks and decisions older than this many days (an archive's age is its run's: when "
                    "the file was analysed); null: keep forever (docs/privacy.md)")
    max_mb: float | None = Field(
        default=None, gt=0,
        description="keep the store under this many MB: the oldest tracks go first (SQLite: the file shrinks; "
                    "PostgreSQL: live rows, the files shrink only with VACUUM FULL); null: no cap")
    prune_every_s: float = Field(default=600.0, ge=1, le=7 * 86400,
                                 description="seconds between the run's prunes by keep_days and max_mb (and one "
                                             "when the run starts)")
    strangers: bool = Field(
        default=True,
        description="give each unknown track a stranger id (stranger-000123) shared with the unknown tracks it "
                    "matches in the last strangers_days (stream/history/strangers.py)")
    strangers_days: float = Field(default=30.0, gt=0, le=3650,
                                  description="days of earlier unknown tracks a new unknown track is compared with")
    strangers_threshold: float | None = Field(
        default=None, gt=0, le=2,
        description="track-to-track distance (between unit mean embeddings) under which two unknown tracks are one "
                    "stranger; null: the value measured for the model (none measured: no stranger ids)")
    strangers_cache: int = Field(default=50_000, ge=100, le=10_000_000,
                                 description="most recent unknown tracks held in memory to match against (512 bytes "
                                             "each for a 128-d model)")

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
