"""Config section `evaluate.trust`: held-out likelihood, judge validation, simulator check.

Defaults follow the reference setup (held-out splits of real and synthetic sessions, a
calibration set of 50 real counselor turns with six degradations each, two of which keep the
original's length, k=3 repeats);
configs/demo.yaml shrinks them for the embedded model.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# shuffled / unrelated_matched keep the original's word count (calibrate.LENGTH_KEEPING).
Degradation = Literal["unrelated", "generic", "off_topic", "dismissive", "shuffled", "unrelated_matched"]


class TrustConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auc_threshold: float = Field(
        0.7, ge=0, le=1, description="judge calibration: the within-item AUC's 95% CI lower bound must reach this "
        "to trust judge scores (a perfect judge needs at least 9 items at 0.7)")
    length_margin: float = Field(
        0.1, ge=0, le=1, description="judge calibration: the judge's AUC must beat the length baseline's "
        "(prefer the longer reply) by at least this")
    max_failure_rate: float = Field(
        0.2, ge=0, le=1, description="judge calibration: the judge is not validated when more than this share of "
        "its calibration ratings could not be parsed (its own cap: llm.max_failure_rate only decides whether a "
        "stage stops)")
    # -- held-out likelihood (stage `likelihood`)
    likelihood_sessions: int = Field(
        100, ge=1, description="likelihood: at most this many sessions per held-out split (real, synthetic)")
    likelihood_turns: int = Field(
        20, ge=1, description="likelihood: counselor turns scored per session (the dialogue is cut after)")
    # -- judge validation (stage `calibrate`)
    calib_items: int = Field(50, ge=2, description="calibrate: original counselor turns from held-out real sessions")
    calib_samples: int = Field(3, ge=1, description="calibrate: judge samples per reply (k), for repeat noise")
    calib_context: int = Field(6, ge=1, description="calibrate: messages of preceding dialogue shown to the judge")
    degradations: list[Degradation] = Field(
        default_factory=lambda: ["unrelated", "generic", "off_topic", "dismissive", "shuffled", "unrelated_matched"],
        description="calibrate: degraded versions made of each original counselor turn (shuffled and "
        "unrelated_matched keep its length)")
    # -- judge against experts (part of stage `calibrate`, evaluate/experts.py)
    experts: str | None = Field(
        "annomi", description="calibrate: expert-labelled transcripts (AnnoMI MI quality): a catalogue name (its "
        "downloaded copy) or a path to AnnoMI-simple.csv; null = skip (the report says the check did not run)")
    expert_pairs: int = Field(
        19, ge=0, description="calibrate: low-quality transcripts, each rated with a high-quality one of its topic "
        "(0 = skip)")
    expert_window: int = Field(10, ge=2, description="calibrate: messages from the middle of each transcript shown to the judge")
    expert_threshold: float = Field(
        0.5, ge=0, le=1, description="calibrate: the high-vs-low AUC's 95% CI lower bound must be above this "
        "(0.5 = chance) for the judge to pass")
    expert_turns: int = Field(
        0, ge=0, description="calibrate: expert-coded AnnoMI therapist turns the `annotator` labels, scored "
        "against the experts' codes (kappa, F1; 0 = skip)")
    # -- patient-simulator check (part of stage `calibrate`)
    simcheck_sessions: int = Field(20, ge=0, description="simulator check: simulated sessions examined (0 = skip)")
    simcheck_turns: int = Field(4, ge=1, description="simulator check: patient turns judged per session")
