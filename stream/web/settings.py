"""The web view's settings (the ``web`` section of the config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    http: str | None = Field(
        default=None,
        description="serve the live web view on HOST:PORT (or PORT: 127.0.0.1); beyond loopback it needs web.token",
    )
    token: str | None = Field(
        default=None,
        description="required by every request when set (Bearer, basic-auth password, or ?token= once); "
                    "${VAR} reads it from the environment",
    )
    max_fps: float = Field(default=10.0, gt=0, le=120, description="pictures per second per camera sent to viewers")
    jpeg_quality: int = Field(default=80, ge=10, le=100, description="JPEG quality of the pictures")
