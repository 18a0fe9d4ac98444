"""Config sections `curate` (judge + selection) and `mix` (training sets + export) (see hybridtune/curate/).

Defaults follow the reference paper's setup (a 500-session hybrid training set); the demo
config shrinks them. Every field is described once here; the CLI help points to it.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# What the curation judge rates (1-10 each) and flags: declared once, used by the judge's
# reply schema (judge.py), the dataset card (export.py) and the review app.
CRITERIA = ("coherence", "realism", "therapeutic_value", "technique_adherence")
FLAGS = ("unsafe_advice", "role_confusion", "repetition", "abrupt_ending", "crisis_content")

# Licences of the public data sets (see hybridtune/catalogue/catalogue.yaml) and of the project's demo transcripts.
KNOWN_LICENCES = {
    "annomi": "AnnoMI: public domain (upstream README statement)",
    "esconv": "ESConv: CC BY-NC 4.0, research use (non-commercial)",
    "counsel-chat": "CounselChat: MIT",
    "demo": "hybridtune demo transcripts: fictional, written for this project",
    "conversations": "hybridtune kept conversations: users were told and could opt out; PII-scrubbed; "
                     "reviewer-accepted; do not redistribute",
}


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(6.0, ge=1, le=10, description="minimum mean judge score (1-10) to keep a session")
    borderline: float = Field(
        1.0, ge=0, le=9, description="sessions within this margin below the threshold go to human review")
    top_k_per_stratum: int | None = Field(
        None, ge=1, description="keep at most the k best passing sessions per stratum (None: no cap)")
    stratify_by: str = Field(
        "technique", description="strata for top-k: technique (a session's primary one) or a meta key such as topic")
    min_per_technique: int = Field(
        1, ge=0, description="keep at least this many sessions showing each technique (best first), even below "
        "the threshold, so selection does not destroy technique coverage")
    coverage_floor: float = Field(
        4.0, ge=1, le=10, description="a session kept for coverage must still score at least this")
    review_flags: list[str] = Field(
        default_factory=lambda: list(FLAGS),
        description=f"judge flags that send a session to review ({', '.join(FLAGS)})")
    crisis_levels: list[str] = Field(
        default_factory=lambda: ["high", "imminent"],
        description="crisis-screen risk levels (none|low|high|imminent) that send a session to review as crisis "
        "content "
        "when the safety policy gives it a crisis reply (a check-in alone, a learned-only flag, does not)")
    judge: bool = Field(
        True, description="judge synthetic sessions with the LLM judge; off: keep every session the crisis screen "
        "passes (reason not_judged), for a judge too weak to select, such as the embedded 135M model")
    judge_real: bool = Field(False, description="also judge real sessions (they are always crisis-screened)")
    second_judge_endpoint: str | None = Field(
        None, description="endpoint of an optional second judge (same rubric); agreement: Krippendorff's alpha")
    max_chars: int = Field(
        6000, ge=200, description="transcript characters shown to the judge (longer sessions are cut, the cut marked)")
    concurrency: int = Field(4, ge=1, description="judge requests in flight")
    max_tokens: int | None = Field(
        None, ge=1, description="judge reply token limit in this stage (None: roles.judge.max_tokens); "
        "a verdict needs about 280 (SmolLM2 tokenizer)")


class MixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(500, ge=1, description="units per variant (train + valid) unless its recipe sets size")
    valid_fraction: float = Field(0.1, ge=0, lt=1, description="share of each variant held out for validation")
    test_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of eligible real (and, unless test_fraction_synthetic is set, of "
        "synthetic) sessions held out as test splits that no variant trains on")
    test_fraction_synthetic: float | None = Field(
        None, ge=0, lt=1, description="share of synthetic sessions held out as test_synthetic (None: test_fraction); "
        "lets a study hold out half the real sessions without losing half the synthetic ones")
    min_test: int = Field(1, ge=0, description="at least this many sessions per test split (pools of 2 or more)")
    group_by: list[str] = Field(
        default_factory=list, description="hold out whole groups of real sessions: sessions that share a value of "
        "any of these meta keys are one group, never split between training and test (AnnoMI: [video_url, series], "
        "recorded at ingest; any other source: its own meta key, e.g. [client_id]); [] = split by session")
    stratify_by: str = Field(
        "technique", description="attribute stratifying each source's sample unless a recipe sets balance_by: "
        "technique, emotion, distortion (annotations) or a meta key such as topic")
    allow_smaller: bool = Field(
        False, description="build smaller sets when too few eligible sessions exist, instead of failing")
    include_pending: bool = Field(
        False, description="also use sessions still waiting in the review queue (default: selected or accepted only)")
    leakage_threshold: float = Field(
        0.5, gt=0, le=1, description="leakage check: a training and a held-out session sharing this share of the "
        "smaller one's word shingles are near-duplicates, and the mix stage fails")
    leakage_shingle_words: int = Field(8, ge=3, description="leakage check: words per shingle")
    max_example_tokens: int = Field(
        65536, ge=256, description="OpenAI export: token limit per training example (gpt-4o-mini: 65536)")
    export_system_prompt: bool = Field(
        True, description="exports start each example with the counselor system prompt (when it has none), "
        "as the fine-tuned model will be served with it")
    seed: int | None = Field(None, description="sampling seed (None: the experiment seed)")
    licences: dict[str, str] = Field(
        default_factory=lambda: dict(KNOWN_LICENCES),
        description="licence of each real source for the dataset card, keyed by reader format or input folder name")

    @property
    def test_fraction_synth(self) -> float:
        """The share of synthetic sessions held out (test_fraction_synthetic, else test_fraction)."""
        return self.test_fraction if self.test_fraction_synthetic is None else self.test_fraction_synthetic
