"""Config section `evaluate.trust`: held-out likelihood, judge validation, simulator check."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrustConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auc_threshold: float = Field(0.7, ge=0, le=1, description="judge calibration AUC needed to trust judge scores")
