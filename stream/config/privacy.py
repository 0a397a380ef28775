"""``privacy.*``: what a run may keep and show of the faces it cannot name (docs/history.md, "Privacy mode")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PrivacyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    unknowns: Literal["keep", "blur"] = Field(
        default="keep",
        description="keep: unknown faces are shown, saved and remembered like the others; blur: faces without a "
                    "decided identity are pixelated in the web view and annotated video (a track stays blurred "
                    "until it is named), and nothing of them is stored: no history row, thumbnail, embedding or "
                    "stranger id, no output.save_unknowns crops")

    @property
    def blur(self) -> bool:
        return self.unknowns == "blur"
