"""Config sections `curate` (judge + selection) and `mix` (training sets) (see hybridtune/curate/)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(6.0, ge=1, le=10, description="minimum mean judge score to keep a session")


class MixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(500, ge=1, description="target sessions in the hybrid set")
    real_ratio: float = Field(0.5, ge=0, le=1, description="share of real sessions in the hybrid set")
