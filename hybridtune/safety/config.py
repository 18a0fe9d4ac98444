"""Config section `safety`: crisis screen thresholds and response policy (see hybridtune/safety/)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: str = Field("US", description="crisis resources locale (data file hybridtune/safety/resources.yaml)")
    use_model: bool = Field(True, description="ask the judge model when the rules cannot settle a turn")
