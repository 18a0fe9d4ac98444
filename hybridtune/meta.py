"""Typed `Session.meta`: the keys one stage writes and later stages read, per session source.

`Session.meta` stays a dict on disk (records allow extra keys, and old runs still load);
these models are the contract: the writer builds one (`.dump()`), a reader parses one with
`.of(session)` and gets typed fields with defaults instead of string lookups.

    meta = SynthMeta(domain="cbt", mode="roleplay", ...).dump()     # synth/sessions.py
    SynthMeta.of(s).planned_techniques                              # synth/report.py
    RealMeta.of(s).licence                                          # curate/export.py ("license" read too)
    SimMeta.of(s).variant                                           # evaluate/score.py
"""
from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .records import Session


class _Meta(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @classmethod
    def of(cls, s: Session):
        return cls.model_validate(s.meta)

    def dump(self) -> dict[str, Any]:
        """The dict stored in Session.meta (fields left unset are not written)."""
        return self.model_dump(exclude_unset=True)


class RealMeta(_Meta):
    """Written by the real stage (real/stage.py) from the reader and the input file."""

    file: str = ""
    format: str = ""
    source_key: str = ""
    # copied from the input file's own fields, so any scalar type
    dataset: str | int | float | None = None
    licence: str | int | float | None = Field(None, validation_alias=AliasChoices("licence", "license"))


class SynthMeta(_Meta):
    """Written by synth/sessions.py; read by synth/report.py, curate (technique, topic) and export."""

    domain: str = ""
    mode: str = ""
    persona_id: str | None = None
    persona_attributes: dict[str, Any] = Field(default_factory=dict)
    scenario_id: str = ""
    theme: str = ""
    summary: str = ""
    attitude: str = ""
    terms: list[str] = Field(default_factory=list,  # the scenario's domain terms (Scenario.terms)
                             validation_alias=AliasChoices("terms", "cognitive_distortions"))
    planned_techniques: list[str] = Field(default_factory=list)
    realised_techniques: list[str] | None = None  # None: not annotated
    target_exchanges: int = 0
    exchanges: int = 0
    ended_by: str = "?"
    fewshot_ids: list[str] = Field(default_factory=list)
    prompts: dict[str, str] = Field(default_factory=dict)
    prompt_version: str = ""
    annotation_error: str | None = None


class SimMeta(_Meta):
    """Written by evaluate/simulate.py; read by score, calibrate, simcheck and the report."""

    variant: str = "?"
    scenario_id: str = ""
    end_reason: str = ""
    counselor_turns: int = 0
    max_turns: int = 0
    opens: str = ""  # who spoke first: client | counselor (config `opens`)
    patient_prompt: str = ""
    patient_model: str = ""
    counselor_model: str = ""
    seed: int = 0
    attitude: str = ""
    crisis: bool = False
