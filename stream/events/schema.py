"""The event schema (version 1), the same on ZeroMQ and in ``--events-out`` JSONL.

On ZeroMQ each event is a two-part message ``[topic, json]`` with topic ``"<type>.<source>"``, so a
subscriber can filter by prefix (``identity.``, ``identity.cam1``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
EventType = Literal["track_started", "identity", "track_ended", "heartbeat"]


class Event(BaseModel):
    schema_: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema", description="event schema version")
    type: EventType
    source: str = Field(description="source name, e.g. cam1 or the file stem")
    track_id: int | None = Field(default=None, description="per-source track id; null for heartbeats")
    identity: str | None = Field(default=None, description="decided identity name, or null for unknown")
    score: float | None = Field(default=None, description="vote confidence of the identity, 0..1")
    distance: float | None = Field(default=None, description="embedding distance of the best match")
    bbox: list[float] | None = Field(default=None, description="[x1, y1, x2, y2] in pixels")
    frame: int | None = Field(default=None, description="frame index in the source")
    pts: float | None = Field(default=None, description="presentation time in seconds")
    ts: float = Field(description="wall clock (unix seconds) when the event was made")
    seq: int = Field(default=0, description="per publisher, +1 per message; set by the publisher")
    origin: str | None = Field(
        default=None,
        description="the pipeline that made the event when a site has several (`facestream site run`: a "
                    "shard, or 'site' for the driver's status); seq counts per origin",
    )
    votes: dict[str, Any] | None = Field(default=None, description="track_ended: vote summary")
    reason: str | None = Field(
        default=None,
        description="track_ended: lost, scene_cut, appearance_changed (the box went to another person: the "
                    "rest continues as a new track), end_of_source, or worker_restarted / publisher_restarted "
                    "(a killed worker was restarted; the person, if still there, continues as a new track); "
                    "identity: gallery_changed (the decided name was removed from the gallery while running)",
    )
    stats: dict[str, Any] | None = Field(default=None, description="heartbeat: pipeline counters")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def topic(self) -> str:
        return f"{self.type}.{self.source}"

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Event:
        """Parse and validate a received event (raises pydantic.ValidationError when invalid)."""
        return cls.model_validate_json(data)
