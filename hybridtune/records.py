"""Typed records that cross stage boundaries.

Every artifact in a run directory is a JSONL file of one of these records, keyed by
a stable `id`. `Session.messages` is the OpenAI fine-tuning / TRL `messages` format:
patient/client = `user`, counselor = `assistant`, optional leading `system`.

    from hybridtune.records import Session, Message
    s = Session(id=stable_id("demo", 1), source="real", messages=[Message(role="user", content="hi")])
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


def stable_id(*parts: Any) -> str:
    """A short, deterministic id from any JSON-able parts (same parts -> same id, across runs)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class Record(BaseModel):
    """Base of every stored record: has an `id`; unknown fields are kept, not dropped."""

    model_config = ConfigDict(extra="allow")
    id: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class TurnAnnotation(BaseModel):
    """Annotation of one message (by index into `Session.messages`)."""

    model_config = ConfigDict(extra="allow")
    index: int
    techniques: list[str] = Field(default_factory=list)  # counselor turns
    emotion: str | None = None  # client turns
    distortions: list[str] = Field(default_factory=list)  # client turns
    cues: list[str] = Field(default_factory=list)


class Session(Record):
    """One conversation: real (ingested), synthetic (generated) or simulated (evaluation)."""

    source: Literal["real", "synthetic", "simulated"]
    messages: list[Message]
    meta: dict[str, Any] = Field(default_factory=dict)
    annotations: list[TurnAnnotation] = Field(default_factory=list)
    scores: dict[str, Any] = Field(default_factory=dict)

    def turns(self, role: Role) -> list[str]:
        return [m.content for m in self.messages if m.role == role]

    def text(self) -> str:
        return "\n".join(f"{m.role}: {m.content}" for m in self.messages if m.role != "system")


class Persona(Record):
    """A simulated client: sampled attributes plus an LLM-written narrative."""

    attributes: dict[str, str]
    narrative: str = ""
    quality: dict[str, Any] = Field(default_factory=dict)
    prompt_version: str = ""


class Scenario(Record):
    """A concrete situation for one persona (also the unit of evaluation)."""

    persona_id: str | None = None
    persona: Persona | None = None
    theme: str = ""
    summary: str
    # ids of the domain pack's terms the client shows (its distortions.yaml: cognitive
    # distortions for cbt, limiting beliefs for sales_coach); "cognitive_distortions" is read too
    terms: list[str] = Field(default_factory=list, validation_alias=AliasChoices("terms", "cognitive_distortions"))
    scenario: str
    attitude: str = "neutral"
    techniques: list[str] = Field(default_factory=list)  # ground-truth or planned techniques
    meta: dict[str, Any] = Field(default_factory=dict)
    prompt_version: str = ""

    @property
    def cognitive_distortions(self) -> list[str]:
        """The old name of `terms` (code and prompts written before domain packs named their terms)."""
        return self.terms


class Failure(Record):
    """A work item a stage could not complete (kept with its raw output, never silently dropped)."""

    stage: str
    item: str
    error: str
    raw: str = ""
    attempts: int = 1


class QuarantineEntry(Record):
    """Input that could not be used: where it is (file, line) and why, already scrubbed of PII."""

    file: str
    line: int | None = None
    reason: str
    excerpt: str = ""


class ModelEntry(BaseModel):
    """One counselor variant in `runs/<name>/models.json`: everything needed to call and reproduce it."""

    model_config = ConfigDict(extra="allow")
    variant: str
    backend: str  # llamacpp | openai | transformers
    model: str  # GGUF path, base model id, or fine-tuned model id
    adapter: str | None = None  # GGUF LoRA adapter path (llama.cpp) or PEFT dir
    endpoint: str | None = None  # name of a configured endpoint, when served remotely
    data_hash: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
