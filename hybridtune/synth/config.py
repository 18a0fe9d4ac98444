"""Config section `synth`: personas, scenarios and synthetic sessions (see hybridtune/synth/)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SynthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    personas: int = Field(10, ge=0, description="personas to generate")
    scenarios_per_persona: int = Field(1, ge=1)
    sessions: int = Field(10, ge=0, description="synthetic sessions to generate")
