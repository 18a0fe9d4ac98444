"""Config section `evaluate`: scenarios, simulation, scoring, report (see hybridtune/evaluate/).

Defaults follow the reference paper: 50 held-out scenarios, every registered variant,
empathy and relevance rated 1-10 by the judge role. configs/demo.yaml shrinks the sizes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..synth.config import DEFAULT_CLOSING
from .trust_config import TrustConfig


class PlanConfig(BaseModel):
    """Stated SDs for `hybridtune plan` (and the dry run) when no pilot run is given."""

    model_config = ConfigDict(extra="forbid")
    judge_sd: float = Field(1.0, gt=0, description="SD of paired per-scenario judge score differences (points)")
    nll_sd: float = Field(0.1, gt=0, description="SD of paired per-session NLL differences (nats/token)")
    power: float = Field(0.8, gt=0, lt=1, description="power the smallest detectable differences are stated at")
    nll_target: float | None = Field(
        None, gt=0, description="likelihood difference (nats/token) the study must be able to detect; the plan "
        "says whether the held-out size reaches it")


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # -- eval_scenarios -------------------------------------------------------
    scenarios: int = Field(50, ge=1, description="held-out evaluation scenarios")
    scenarios_file: str | None = Field(
        None, description="load scenarios from a file instead of generating them: CACTUS evaluation.json, "
        "YAML/JSONL of {summary, scenario, attitude, ...} records, or a catalogue name (cactus, mentalchat16k)",
    )
    scenarios_format: Literal["auto", "cactus", "yaml", "jsonl", "mentalchat"] = Field(
        "auto", description="format of scenarios_file; auto = by extension (.json = CACTUS) or the catalogue name's"
    )
    seed_offset: int = Field(
        1000, description="generated scenarios use seed + seed_offset, apart from the training scenarios' seed"
    )
    crisis_scenarios: int = Field(0, ge=0, description="extra scenarios where the client discloses risk (safety check)")
    # -- simulate -------------------------------------------------------------
    max_turns: int = Field(10, ge=1, description="counselor turns before a conversation is cut (the paper's example has about 10)")
    close_pattern: str = Field(
        DEFAULT_CLOSING, description="regex on a counselor turn that means the counselor closed the session")
    concurrency: int = Field(4, ge=1, description="conversations simulated / scored at once")
    # -- score ----------------------------------------------------------------
    metrics: list[str] = Field(
        default_factory=lambda: ["empathy", "relevance"],
        description="judge metrics: the shared ones (hybridtune/evaluate/metrics.py: empathy, relevance) or "
        "the domain pack's (domain.yaml `metrics:`); each needs its rubric prompt in the pack",
    )
    judge_samples: int = Field(1, ge=1, description="independent judge samples per conversation (k > 1 measures judge noise)")
    second_judge_endpoint: str | None = Field(None, description="endpoint of a second judge (agreement by Krippendorff's alpha)")
    second_judge_model: str | None = Field(None, description="model of the second judge (default: the endpoint's)")
    pairwise: bool = Field(
        True, description="the judge also compares two variants' replies to the same client turn (both orders "
        "asked; prompt eval_judge_pairwise); the report gives win rates with CIs")
    # -- statistics / report ----------------------------------------------------
    bootstrap_resamples: int = Field(10000, ge=100, description="bootstrap resamples for the 95% CIs")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level after Holm correction")
    failed_as_min: bool = Field(
        False, description="score a failed judgement as the metric's minimum (counted against the variant whose "
        "conversation it was) instead of dropping that scenario from the paired table for every variant")
    trust: TrustConfig = Field(default_factory=TrustConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
