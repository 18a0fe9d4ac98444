"""Typed `Session.meta`: the keys one stage writes and later stages read, per session source.

`Session.meta` stays a dict on disk (records allow extra keys, and old runs still load);
these models are the contract: the writer builds one (`.dump()`), a reader parses one with
`.of(session)` and gets typed fields with defaults instead of string lookups.

    meta = SynthMeta(domain="cbt", mode="roleplay", ...).dump()     # synth/sessions.py
    SynthMeta.of(s).planned_techniques                              # synth/report.py
    RealMeta.of(s).licence                                          # curate/export.py
    SimMeta.of(s).variant                                           # evaluate/score.py
    CurateMeta(status="selected", reasons=[...]).put(s)             # curate/select.py (under meta["curate"])
    CurateMeta.of(s).reasons                                        # review app, decisions export, judge summary
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .records import Session


class _Meta(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    KEY: ClassVar[str | None] = None  # stored under Session.meta[KEY] instead of at its top level

    @classmethod
    def of(cls, s: Session):
        return cls.model_validate(s.meta.get(cls.KEY) or {} if cls.KEY else s.meta)

    def dump(self) -> dict[str, Any]:
        """The dict stored in Session.meta (or under its KEY); fields left unset are not written."""
        return self.model_dump(exclude_unset=True)

    def put(self, s: Session) -> Session:
        """A copy of `s` with this model stored under its KEY (the rest of the meta kept)."""
        assert self.KEY, f"{type(self).__name__} is the whole meta; write it with dump()"
        return s.model_copy(update={"meta": {**s.meta, self.KEY: self.dump()}})


class RealMeta(_Meta):
    """Written by the real stage (real/stage.py) from the reader and the input file; read by mix and export."""

    file: str = ""
    format: str = ""
    source_key: str = ""
    # copied from the input file's own fields, so any scalar type
    dataset: str | int | float | None = None
    # an input file may spell it "license": the real stage stores it as `licence` (runs made
    # before that stored the input's spelling, hence the alias)
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


class CurateMeta(_Meta):
    """Session.meta["curate"]: written by curate/select.py (and the review app for conversations);
    read by the curate summary, the review app and the decisions export."""

    KEY: ClassVar[str | None] = "curate"
    status: str = ""  # selected | review | rejected
    reasons: list[str] = Field(default_factory=list)
