"""Experiment config: one YAML file per experiment, validated with pydantic.

    cfg = load_config("configs/demo.yaml", overrides=["synth.sessions=20"])

- Unknown keys and wrong types are one error line each, naming the key path and the fix.
- `--set a.b=value` overrides are parsed as YAML scalars and applied before validation.
- Each LLM role (generator, patient, counselor, judge, annotator) binds to a named endpoint
  plus a model and sampling params; endpoints say which backend serves them.
- Stage sections are defined beside their stage (`hybridtune/<stage>/config.py`).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .app.conversations import ConversationsConfig
from .contamination import ContaminationConfig, migrate_legacy
from .curate.config import CurateConfig, MixConfig
from .errors import UserError
from .evaluate.config import EvaluateConfig
from .real.config import RealConfig
from .safety.config import SafetyConfig
from .synth.config import SynthConfig
from .train.config import TrainConfig
from .variants import Recipe, Variant, default_recipes, resolve

ROLES = ("generator", "patient", "counselor", "judge", "annotator")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EndpointConfig(Strict):
    """Where a model is served. `llamacpp` runs in-process; `openai` is any OpenAI-compatible API."""

    backend: str = Field("llamacpp", description="registered backend: llamacpp | openai | fake")
    model: str = Field("smollm2", description="model name; for llamacpp 'smollm2' or a .gguf path")
    base_url: str | list[str] | None = Field(None, description="OpenAI-compatible URL(s); several = load-balanced")
    api_key_env: str | None = Field(None, description="name of the env var holding the API key (never the key)")
    max_in_flight: int = Field(8, ge=1, description="concurrent requests to this endpoint")
    rpm: int | None = Field(None, ge=1, description="requests-per-minute limit")
    tpm: int | None = Field(None, ge=1, description="tokens-per-minute limit")
    timeout_s: float = Field(120.0, gt=0)
    n_ctx: int = Field(4096, ge=256, description="llamacpp: context window")
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads (default: all cores)")
    lora_path: str | None = Field(None, description="llamacpp: GGUF LoRA adapter applied to the model")
    chat_format: str | None = Field(None, description="llamacpp: override the GGUF's chat template")
    prefix_reuse: bool = Field(True, description="llamacpp: keep model states across calls and evaluate only "
                               "the prompt tokens not already read (outputs are the same either way)")
    state_cache_mib: int = Field(128, ge=0, description="llamacpp: byte limit of the saved-state store, MiB per model "
                                 "instance (each variant and the scorer are one)")
    min_prompt_batch: int = Field(8, ge=2, le=256, description="llamacpp: no prompt is read in batches smaller "
                                  "than this (a 1-token batch computes other bits), so reuse never changes outputs")
    structured: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema", description="how to ask for JSON: schema-constrained, JSON mode, or prompt only"
    )
    logprobs: bool = Field(True, description="openai: endpoint returns prompt logprobs (vLLM, llama.cpp server)")
    extra: dict[str, Any] = Field(default_factory=dict, description="backend-specific keyword arguments")


class RoleConfig(Strict):
    """A role's binding: endpoint + model override + sampling params."""

    endpoint: str = "local"
    model: str | None = Field(None, description="override the endpoint's model for this role")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(384, ge=1)
    seed: int | None = None


class Price(Strict):
    input: float = Field(0.0, ge=0, description="USD per 1M input tokens")
    output: float = Field(0.0, ge=0, description="USD per 1M output tokens")
    training: float = Field(0.0, ge=0, description="USD per 1M training tokens (hosted fine-tuning; x epochs)")


class LLMConfig(Strict):
    cache: bool = Field(True, description="SQLite response cache (runs/<name>/cache.sqlite)")
    max_reasks: int = Field(2, ge=0, description="re-asks of an invalid structured reply")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts")
    backoff_s: float = Field(1.0, gt=0, description="base of exponential backoff")
    max_failure_rate: float = Field(0.25, ge=0, le=1, description="a stage fails loudly above this")
    budget_usd: float | None = Field(None, ge=0, description="stop the run cleanly when spent")
    prices: dict[str, Price] = Field(default_factory=dict, description="per-model price table")
    output_fill: float = Field(0.6, gt=0, le=1, description="dry-run estimate: share of max_tokens a reply uses")
    batch: bool = Field(False, description="openai endpoints: send batchable stages through /v1/batches")
    batch_discount: float = Field(0.5, gt=0, le=1, description="price factor of batch requests (OpenAI: half)")
    batch_poll_s: float = Field(30.0, gt=0, description="seconds between batch status polls")
    batch_timeout_h: float = Field(24.0, gt=0, description="give up waiting for a batch (it keeps running; rerun follows it)")


class ExperimentConfig(Strict):
    name: str = Field("demo", pattern=r"^[A-Za-z0-9._-]+$", description="run name: runs/<name>/")
    runs_dir: str = Field("runs", description="parent folder of run directories")
    seed: int = 0
    domain: str = Field("cbt", description="domain pack: a name under hybridtune/domains or a folder path")
    system_prompt: str | None = Field(None, description="counselor system prompt; default: the domain's")
    opens: Literal["client", "counselor"] = Field(
        "client", description="who speaks first, the same in training data (synthetic sessions, mixed sets) and "
        "in simulated evaluation conversations; real sessions open with the client")
    quiet: bool = False
    endpoints: dict[str, EndpointConfig] = Field(default_factory=lambda: {"local": EndpointConfig()})
    roles: dict[str, RoleConfig] = Field(default_factory=lambda: {r: RoleConfig() for r in ROLES})
    llm: LLMConfig = Field(default_factory=LLMConfig)
    real: RealConfig = Field(default_factory=RealConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    variants: dict[str, Recipe] = Field(
        default_factory=default_recipes,
        description="counselor variants, each a recipe {sources, real_share, size, units, balance_by}; "
        "name@{a,b,...} is a sweep over the real share (see hybridtune/variants.py)")
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    conversations: ConversationsConfig = Field(default_factory=ConversationsConfig)
    source_path: str | None = Field(None, description="set by load_config: the YAML file read")

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        return migrate_legacy(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _roles_bound(self) -> ExperimentConfig:
        for role in ROLES:
            if role not in self.roles:
                self.roles[role] = RoleConfig()
        for role, rc in self.roles.items():
            if role not in ROLES:
                raise ValueError(f"roles.{role}: unknown role; use one of {', '.join(ROLES)}")
            if rc.endpoint not in self.endpoints:
                raise ValueError(
                    f"roles.{role}.endpoint: '{rc.endpoint}' is not defined under endpoints "
                    f"(defined: {', '.join(self.endpoints) or 'none'})"
                )
        self.variant_list()  # a bad declaration fails at load, naming the key
        return self

    def variant_list(self) -> list[Variant]:
        """The declared variants in order, sweeps expanded (the one list every stage iterates)."""
        return resolve(self.variants, self.mix.size, self.mix.stratify_by)

    def variant(self, name: str) -> Variant:
        for v in self.variant_list():
            if v.name == name:
                return v
        raise UserError(f"variant '{name}' is not declared under variants "
                        f"(declared: {', '.join(v.name for v in self.variant_list())})")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def resolved_dict(self) -> dict:
        return self.model_dump(mode="json")


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"--set {dotted}: '{k}' is not a section, cannot set a key inside it")
        node = nxt
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set synth.sessions=20")
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return data


def _model_at(loc: tuple, root: type[BaseModel] = ExperimentConfig) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at `loc` (for 'did you mean' hints)."""
    model: Any = root
    for part in loc[:-1]:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        cand = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = cand[0] if cand else None
        if model is None and args:  # dict[str, Model]: the next part is a key
            vals = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            model = vals[0] if vals else None
    return model if isinstance(model, type) else None


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            owner = _model_at(loc)
            known = list(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"remove it (known keys: {', '.join(known)})"
            lines.append(f"{source}: {path}: unknown key; {fix}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            got_s = f" (got {got!r})" if not isinstance(got, dict | list) and got is not None else ""
            lines.append(f"{source}: {path}: {msg}{got_s}")
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate an experiment config; raises UserError with key paths."""
    data: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise UserError(f"{p}: config file not found; pass a YAML file such as configs/demo.yaml")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise UserError(f"{p}:{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
        except UnicodeDecodeError:
            raise UserError(f"{p}: not UTF-8 text; save the config as UTF-8 YAML") from None
        if not isinstance(data, dict):
            raise UserError(f"{p}: expected a mapping of keys at the top level, got {type(data).__name__}")
    apply_overrides(data, overrides or [])
    data["source_path"] = source
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, source)) from None
