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
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .app.config import ConversationsConfig
from .contamination import ContaminationConfig, migrate_legacy
from .curate.config import CurateConfig, MixConfig
from .errors import UserError
from .evaluate.config import EvaluateConfig
from .llm.config import EndpointConfig, LLMConfig, PoolConfig, RoleConfig, Strict, looks_like_key
from .real.config import RealConfig
from .safeparse import BadYAML, load_yaml, yaml_error
from .safety.config import SafetyConfig
from .store import check_run_name, run_path
from .synth.config import SynthConfig
from .train.config import TrainConfig
from .variants import Recipe, Variant, default_recipes, resolve, with_seeds

ROLES = ("generator", "patient", "counselor", "judge", "annotator")


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

    def pool_config(self) -> PoolConfig:
        """The part of this config an `LLMPool` reads (the one place it is built)."""
        return PoolConfig(seed=self.seed, endpoints=self.endpoints, roles=self.roles, llm=self.llm)

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
