"""Config section `safety`: crisis screen thresholds and response policy (see hybridtune/safety/).

The screen is layered (rules, then a model for what the rules cannot settle); the policy
replaces or prefixes the counselor's reply when a user turn reaches `crisis_level`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: str = Field("US", description="crisis resources locale (data file hybridtune/safety/resources.yaml); unknown -> INTL")
    resources_file: str | None = Field(None, description="YAML file of crisis resources replacing the packaged resources.yaml")
    use_model: bool = Field(True, description="ask the model (model_role) when the rules cannot settle a turn")
    model_on: Literal["unsettled", "all"] = Field(
        "unsettled", description="which turns go to the model: those the rules cannot settle, or all (indirect risk; costly)"
    )
    model_role: str = Field("judge", description="role that runs the C-SSRS-style rubric (prompt safety_screen.yaml)")
    model_min_confidence: float = Field(
        0.6, ge=0, le=1, description="a model verdict counts only at or above this self-reported confidence"
    )
    model_can_lower: bool = Field(
        False, description="let a confident model lower the rules' level (default: the model can only raise it)"
    )
    crisis_level: Literal["low", "high", "imminent"] = Field(
        "high", description="risk level at which the safe response policy fires"
    )
    response_mode: Literal["replace", "prefix"] = Field(
        "replace", description="crisis reply: replace the counselor's reply, or put the safe response before it"
    )
    max_chars: int = Field(4000, ge=1, description="longest accepted user text (chat, serve, safety check); longer is rejected")
    check_concurrency: int = Field(4, ge=1, description="`safety check`: lines screened in parallel")
