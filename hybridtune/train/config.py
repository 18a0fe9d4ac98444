"""Config section `train`: variants and fine-tuning backends (see hybridtune/train/)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variants: list[str] = Field(default_factory=lambda: ["base", "real", "hybrid"])
    backend: str = Field("local", description="local (TRL + PEFT) | openai")
