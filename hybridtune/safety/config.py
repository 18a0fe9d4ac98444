"""Config section `safety`: crisis screen layers, thresholds and response policy (see hybridtune/safety/).

The screen is layered: phrase rules, the learned layer (embedder + kernel head, CPU, every
turn), optional provider layers (OpenAI moderation, a vLLM-served guard model) and an
optional LLM rubric for what the others cannot settle; the policy replaces or prefixes the
counselor's reply when a user turn reaches `crisis_level`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: str = Field("US", description="crisis resources locale (data file hybridtune/safety/resources.yaml); unknown -> INTL")
    resources_file: str | None = Field(None, description="YAML file of crisis resources replacing the packaged resources.yaml")
    learned: bool = Field(True, description="learned layer on every turn (sentence embedder + kernel head, CPU)")
    learned_head: str | None = Field(
        None, description="head JSON replacing the packaged hybridtune/safety/data/crisis_head.json (thresholds inside)")
    moderation: Literal["auto", "on", "off"] = Field(
        "auto", description="OpenAI moderation layer (self-harm categories): auto = when an api.openai.com endpoint's key is set")
    moderation_endpoint: str | None = Field(
        None, description="endpoint whose base_url and key the moderation layer uses (default: the first api.openai.com one)")
    moderation_model: str = Field("omni-moderation-latest", description="OpenAI moderation model")
    moderation_high: float = Field(0.5, ge=0, le=1, description="self-harm score at which the moderation layer says high")
    moderation_imminent: float = Field(0.8, ge=0, le=1, description="self-harm/intent score at which it says imminent")
    guard_endpoint: str | None = Field(
        None, description="endpoint serving a Llama Guard style model (vLLM, OpenAI-compatible chat); off when unset")
    guard_model: str | None = Field(None, description="guard model name (default: the endpoint's model)")
    guard_high: float = Field(0.5, ge=0, le=1, description="P(unsafe) with self-harm (S11) at which the guard layer says high")
    use_model: bool = Field(
        False, description="LLM rubric layer (model_role) for turns the other layers cannot settle; "
                           "off by default: the embedded 135M model's verdicts are noise, turn it on with a strong judge")
    model_on: Literal["unsettled", "all"] = Field(
        "unsettled", description="which turns go to the rubric: those rules and learned layer cannot settle, or all (costly)"
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
    check_in: bool = Field(
        True, description="ask the fixed check-in question (prompts/safety_check_in.yaml) when only the statistical "
                          "layers flag a turn and nothing shows imminence; off: every flag gets the crisis reply")
    check_in_min_score: float = Field(
        0.30, ge=0, le=1, description="a flag of the learned layer alone on a longer turn counts (a check-in) only at "
        "this p_risk or above, or with a risk word about the speaker (rules.risk_cue); chosen on the training side of "
        "the Reddit users only: `scripts/learned_train.py --pick-check-in`")
    check_in_short_words: int = Field(
        20, ge=0, description="a flag of the learned layer alone on a turn of at most this many words counts only with "
        "a risk word about the speaker (rules.risk_cue): on short everyday turns the head alone is not evidence")
    response_mode: Literal["replace", "prefix"] = Field(
        "replace", description="crisis reply: replace the counselor's reply, or put the safe response before it"
    )
    max_chars: int = Field(4000, ge=1, description="longest accepted user text (chat, serve, safety check); longer is rejected")
    check_concurrency: int = Field(4, ge=1, description="`safety check`: lines screened in parallel")

    @field_validator("moderation", mode="before")
    @classmethod
    def _yaml_on_off(cls, v):  # YAML 1.1 reads a bare on/off as true/false
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v
