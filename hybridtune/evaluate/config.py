"""Config section `evaluate`: scenarios, simulation, scoring, report (see hybridtune/evaluate/)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .trust_config import TrustConfig


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenarios: int = Field(50, ge=1, description="held-out evaluation scenarios")
    max_turns: int = Field(8, ge=1, description="counselor turns before a conversation is cut")
    trust: TrustConfig = Field(default_factory=TrustConfig)
