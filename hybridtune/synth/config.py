"""Config section `synth`: personas, scenarios and synthetic sessions (see hybridtune/synth/).

Defaults follow the reference paper's setup (about 500 synthetic training sessions, each a
multi-turn CBT role-play grounded in a persona and a scenario, with the full quality checks).
configs/demo.yaml shrinks the sizes and may switch the LLM checks off for the embedded model.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# "the session is closing": ends a synthetic role-play (synth.closing_pattern) and a simulated
# evaluation conversation (evaluate.close_pattern); one default for both
DEFAULT_CLOSING = (
    r"(?i)\b(goodbye|good bye|bye for now|see you (next|then|soon)|until next (time|week|session)|"
    r"talk (to you )?(next|soon)|end (our|the|this) session|take care)\b|\[/?END\]"
)


class SynthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # -- personas ---------------------------------------------------------------
    personas: int = Field(250, ge=0, description="personas to generate (attributes quota-sampled from the domain's attributes.yaml)")
    persona_checks: bool = Field(True, description="LLM checks of each persona: attribute correctness and naturalness 1-10")
    min_naturalness: int = Field(6, ge=1, le=10, description="personas judged below this naturalness are regenerated, then dropped")
    max_regenerations: int = Field(2, ge=0, description="regenerations of a persona/scenario/session that fails validation or a check")
    # -- scenarios --------------------------------------------------------------
    scenarios_per_persona: int = Field(2, ge=1, description="scenarios written for each persona")
    min_distortions: int = Field(0, ge=0, description="fewest named cognitive distortions per scenario")
    max_distortions: int = Field(2, ge=0, description="most named cognitive distortions per scenario (assigned by coverage quota)")
    scenario_checks: bool = Field(True, description="LLM check that each named distortion appears in the scenario text")
    near_duplicate_threshold: float = Field(
        0.92, gt=0, le=1, description="cosine similarity (MiniLM embeddings) at or above which a scenario is a near-duplicate and replaced; 1 = off"
    )
    dedup_rounds: int = Field(2, ge=1, description="generation rounds for scenarios: later rounds replace rejected near-duplicates")
    # -- sessions ---------------------------------------------------------------
    sessions: int = Field(500, ge=0, description="synthetic sessions to generate (scenarios are reused round-robin)")
    mode: Literal["roleplay", "single_pass"] = Field(
        "roleplay", description="roleplay: patient and counselor LLMs alternate; single_pass: one generator call writes the dialogue"
    )
    min_exchanges: int = Field(8, ge=1, description="shortest session, in client+counselor exchanges")
    max_exchanges: int = Field(16, ge=1, description="longest session; each session draws a target length in [min, max]")
    techniques_per_session: int = Field(3, ge=1, description="techniques planned per session, dealt so the set meets the quotas")
    technique_weights: dict[str, float] = Field(
        default_factory=dict, description="quota weight per technique id (default 1 each: even coverage)"
    )
    fewshot: int = Field(1, ge=0, description="real sessions (nearest by embedding) shown to the counselor as style exemplars")
    fewshot_max_messages: int = Field(8, ge=2, description="messages of each exemplar shown")
    annotate_realised: bool = Field(True, description="annotator labels the techniques each counselor turn actually used")
    closing_pattern: str = Field(DEFAULT_CLOSING, description="regex on a turn that means the session is closing")
    concurrency: int = Field(4, ge=1, description="items generated at once (the endpoint's max_in_flight also applies)")

    @model_validator(mode="after")
    def _ranges(self) -> SynthConfig:
        if self.min_exchanges > self.max_exchanges:
            raise ValueError("synth.min_exchanges: larger than synth.max_exchanges; make min <= max")
        if self.min_distortions > self.max_distortions:
            raise ValueError("synth.min_distortions: larger than synth.max_distortions; make min <= max")
        return self
