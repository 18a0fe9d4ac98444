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
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .app.config import ConversationsConfig
from .contamination import ContaminationConfig, migrate_legacy
from .curate.config import CurateConfig, MixConfig
from .errors import UserError
from .evaluate.config import EvaluateConfig
from .real.config import RealConfig
from .safeparse import BadYAML, load_yaml, yaml_error
from .safety.config import SafetyConfig
from .store import check_run_name, run_path
from .synth.config import SynthConfig
from .train.config import TrainConfig
from .variants import Recipe, Variant, default_recipes, resolve, with_seeds

ROLES = ("generator", "patient", "counselor", "judge", "annotator")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_PREFIX = re.compile(r"(sk|pk|rk)[-_]|(hf|ghp|gho|ghs|github_pat|glpat|xox[abpr])[-_]|AKIA[0-9A-Z]{12}|AIza|Bearer\s")
SECRET_PARAMS = {"key", "api_key", "apikey", "api-key", "token", "access_token", "auth", "password", "secret", "sig"}


def looks_like_key(value: object) -> bool:
    """True for strings shaped like an API key or token (never printed, never stored)."""
    s = str(value).strip()
    if KEY_PREFIX.match(s):
        return True
    if len(s) >= 32 and re.fullmatch(r"[0-9a-fA-F]+", s) and re.search(r"\d", s):  # a hex secret (64 chars: a SHA-256 key)
        return True
    if len(s) >= 24 and re.fullmatch(r"[A-Za-z0-9]+", s) and re.search(r"\d", s) and re.search(r"[A-Za-z]", s):
        return True  # one long run of letters and digits: no variable name or path word looks like that
    return (len(s) >= 20 and re.fullmatch(r"[A-Za-z0-9_\-.=+/]+", s) is not None and re.search(r"\d", s) is not None
            and re.search(r"[a-z]", s) is not None and re.search(r"[A-Z]", s) is not None)


def url_credential(url: str) -> str | None:
    """Why `url` carries a credential (user:password, a key-like query or path part), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a valid URL"
    if parts.username or parts.password:
        return "it has a user:password@ part"
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.lower() in SECRET_PARAMS or looks_like_key(v):
            return f"its query parameter '{k[:20]}' holds a credential"
    if any(looks_like_key(seg) for seg in parts.path.split("/")):
        return "a part of its path looks like a key"
    return None


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
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads (default: 1 or all cores, "
                                  "whichever has been faster lately, for prompts and generation each)")
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

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if looks_like_key(v):
            raise ValueError("this looks like a key, not a variable name; put the key in an environment variable "
                             "(export OPENAI_API_KEY=...) and write the variable's name here; then revoke the key "
                             "if this file was shared")
        if not ENV_NAME.fullmatch(v):
            raise ValueError("not an environment variable name (letters, digits and '_'), e.g. OPENAI_API_KEY")
        return v

    @field_validator("extra")
    @classmethod
    def _no_key_in_extra(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            if isinstance(x, str) and (looks_like_key(x) or url_credential(x) and "://" in x):
                raise ValueError(f"'{k[:40]}' holds what looks like a key; keys never go in a config (it is shown by "
                                 "--show and saved in the run); put it in an environment variable named by api_key_env")
        return v

    @field_validator("base_url")
    @classmethod
    def _no_key_in_url(cls, v: str | list[str] | None) -> str | list[str] | None:
        for url in [v] if isinstance(v, str) else v or []:
            why = url_credential(url)
            if why:
                raise ValueError(f"refused: {why}; keys never go in a URL (it is logged and saved); put the key "
                                 "in an environment variable and name it in api_key_env")
        return v


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
    gpu_hour_usd: float | None = Field(None, ge=0, description="dry-run estimate: USD per GPU hour of local "
                                       "training and of serving on your own GPUs")
    output_fill: float = Field(0.6, gt=0, le=1, description="dry-run estimate: share of max_tokens a reply uses")
    batch: bool = Field(False, description="openai endpoints: send batchable stages through /v1/batches")
    batch_discount: float = Field(0.5, gt=0, le=1, description="price factor of batch requests (OpenAI: half)")
    batch_poll_s: float = Field(30.0, gt=0, description="seconds between batch status polls")
    batch_timeout_h: float = Field(24.0, gt=0, description="give up waiting for a batch (it keeps running; rerun follows it)")


class ExperimentConfig(Strict):
    name: str = Field("demo", description="run name, one plain folder name: runs/<name>/")
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
    _set_keys: list[str] = PrivateAttr(default_factory=list)  # keys given by `--set`, for `blame`

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        return migrate_legacy(data) if isinstance(data, dict) else data

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_run_name(v)

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
        """The declared variants in order, sweeps expanded, and with `train.seeds` each trained one's
        further seeds (variant~s<seed>, after it): the one list every stage iterates."""
        return with_seeds(resolve(self.variants, self.mix.size, self.mix.stratify_by), self.train.seeds)

    def variant(self, name: str) -> Variant:
        for v in self.variant_list():
            if v.name == name:
                return v
        raise UserError(f"variant '{name}' is not declared under variants "
                        f"(declared: {', '.join(v.name for v in self.variant_list())})")

    @property
    def run_dir(self) -> Path:
        return run_path(self.runs_dir, self.name)

    def resolved_dict(self) -> dict:
        return self.model_dump(mode="json")

    def blame(self, problem: str) -> str:
        """`problem` ("key.path: what is wrong") with the key blamed on `--set` when an override gave it."""
        key = problem.split(":", 1)[0]
        owner = set_key_for(key, self._set_keys)
        return f"--set {problem}" if owner and owner == key else f"--set {owner}: {problem}" if owner else problem


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
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except (yaml.YAMLError, BadYAML) as e:
            _, why = yaml_error(e)
            raise UserError(f"--set {key.strip()}: the value is not valid YAML ({why}); quote it, "
                            f"e.g. --set '{key.strip()}=\"text\"', or fix the brackets") from None
        _set_dotted(data, key.strip(), value)
    return data


def _model_at(loc: tuple, root: type[BaseModel] = ExperimentConfig) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at `loc` (for 'did you mean' hints)."""
    model: Any = root
    key_next = False
    for part in loc[:-1]:
        if key_next:  # dict[str, Model]: this part is a key (endpoints.<name>.), the model stays
            key_next = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        key_next = get_origin(ann) is dict
        cands = get_args(ann)[1:] if key_next else (ann, *get_args(ann))
        found = [a for a in cands if isinstance(a, type) and issubclass(a, BaseModel)]
        model = found[0] if found else None
    return model if isinstance(model, type) else None


def set_key_for(path: str, set_keys: list[str]) -> str | None:
    """The `--set` key that gave `path` (itself, a section above it or a key inside it), if any."""
    for k in set_keys:
        if path == k or path.startswith(k + ".") or k.startswith(path + "."):
            return k
    return None


def format_validation_error(err: ValidationError, source: str, set_keys: list[str] | None = None) -> str:
    """One line per error, naming where the bad value came from: the file, or `--set KEY`."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg_key = e["msg"].removeprefix("Value error, ").split(":", 1)[0]  # model-level errors name their key
        owner = set_key_for(path if loc else msg_key, set_keys or [])
        src = f"--set {owner}" if owner else source
        if e["type"] == "extra_forbidden":
            owner = _model_at(loc)
            known = list(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"remove it (known keys: {', '.join(known)})"
            where = src if src == f"--set {path}" else f"{src}: {path}"
            lines.append(f"{where}: unknown key; {fix}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            secret = "api_key_env" in loc or "base_url" in loc or "extra" in loc or looks_like_key(got)  # never echo a key
            got_s = f" (got {got!r})" if not isinstance(got, dict | list) and got is not None and not secret else ""
            lines.append(f"{src}: {path}: {msg}{got_s}" if src != f"--set {path}" else f"{src}: {msg}{got_s}")
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate an experiment config; raises UserError with key paths."""
    data: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise UserError(f"{p}: config file not found (looked from {Path.cwd()}); give the path of an "
                            "experiment YAML or a run folder, or run from the hybridtune checkout, whose configs/ "
                            "holds the examples")
        try:
            data = load_yaml(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, BadYAML) as e:
            line, why = yaml_error(e)
            msg = why if isinstance(e, BadYAML) else f"not valid YAML ({why}); fix the syntax"
            raise UserError(f"{p}:{f' line {line}' if line else ''}: {msg}") from None
        except UnicodeDecodeError:
            raise UserError(f"{p}: not UTF-8 text; save the config as UTF-8 YAML") from None
        if not isinstance(data, dict):
            raise UserError(f"{p}: expected a mapping of keys at the top level, got {type(data).__name__}")
    apply_overrides(data, overrides or [])
    data["source_path"] = source
    set_keys = [o.split("=", 1)[0].strip() for o in overrides or [] if "=" in o]
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, source, set_keys)) from None
    cfg._set_keys = set_keys
    return cfg
