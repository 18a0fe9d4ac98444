"""Domain packs and the prompt registry: every domain-specific part is data, selected by config.

A domain pack is a folder (`hybridtune/domains/cbt/` is the worked example):

    domain.yaml        name, description, counselor system prompt, speaker labels, and the pack's
                       own judge metrics (`metrics:` [{name, label, low, high, items, prompt}],
                       registered with the shared ones of hybridtune/evaluate/metrics.py on load)
    techniques.yaml    taxonomy of counselor techniques   [{id, name, description}]
    distortions.yaml   cognitive distortions              [{id, name, description}]
    emotions.yaml      client emotions                    [id, ...]
    attributes.yaml    persona attribute lists with weights (synthetic data)
    protocol.yaml      optional: the counseling protocol's steps and question bank (cbt: identify,
                       challenge, reframe); the system prompt can render it as {{ protocol }}
    prompts/NAME.yaml  versioned prompt templates: {version, description, system, user, turn}
                       (`turn`, optional: guidance re-rendered every turn of a role-play and
                       sent after the dialogue, see PromptTemplate.turn_note)

Prompt templates are Jinja2 (undefined variables are errors). Every generated record
stores the `name@version` of the prompt that made it.

    dom = load_domain("cbt")
    msgs = dom.prompt("curate_judge").render(transcript="...", techniques="...")
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError, first_error
from .evaluate.metrics import Metric, MetricSpec, declare_pack_metrics
from .safeparse import BadYAML, load_yaml, yaml_error

DOMAINS_DIR = Path(__file__).parent / "domains"


def read_yaml(path: Path) -> Any:
    """YAML (safeparse: no duplicate keys, bounded aliases) with errors that name the file and line."""
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; re-save it as UTF-8") from None
    except (yaml.YAMLError, BadYAML) as e:
        line, why = yaml_error(e)
        raise UserError(f"{path}{f':{line}' if line else ''}: invalid YAML ({why}); fix it there") from None


M = TypeVar("M", bound=BaseModel)


def validate_entries(path: Path, items: list, model: type[M], what: str = "entry") -> list[M]:
    """Each item of a YAML list as `model`; the first bad one is a UserError naming the file and entry."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(model.model_validate(item))
        except ValidationError as e:
            raise UserError(f"{path}: {what} {i + 1} ({item!r:.60}): {first_error(e)}; fix that {what}") from None
    return out


class Term(BaseModel):
    """An entry of a taxonomy (technique, distortion...)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    description: str = ""


class ProtocolStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    goal: str
    questions: list[str] = Field(min_length=1)


class Protocol(BaseModel):
    """A counseling protocol: ordered steps, each with a goal and a question bank."""

    model_config = ConfigDict(extra="forbid")
    name: str
    steps: list[ProtocolStep] = Field(min_length=1)

    def step(self, step_id: str) -> ProtocolStep:
        return next(s for s in self.steps if s.id == step_id)


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    description: str = ""
    system: str = ""
    user: str
    turn: str = ""  # per-turn guidance, sent after the dialogue (turn_note)

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, env: jinja2.Environment | None = None, **vars: Any) -> list[dict[str, str]]:
        """[system, user] messages (no system message when `system` is empty). `env`: another
        Jinja2 environment (the cost estimate renders leniently); undefined variables are errors."""
        env = env or _STRICT
        try:
            msgs = []
            if self.system.strip():
                msgs.append({"role": "system", "content": env.from_string(self.system).render(**vars).strip()})
            msgs.append({"role": "user", "content": env.from_string(self.user).render(**vars).strip()})
            return msgs
        except jinja2.UndefinedError as e:
            raise AssertionError(f"prompt {self.tag}: {e}; pass it to render()") from None

    def turn_note(self, env: jinja2.Environment | None = None, **vars: Any) -> list[dict[str, str]]:
        """`turn` as one system message to put after the dialogue, or [] when it renders empty.

        What changes from turn to turn (a session plan's phase, the techniques to use, closing)
        goes here rather than into `system`, so that the system message and the dialogue so far
        are the same text on every turn: the embedded backend then reads only the new turns and
        this note (llm/prefix.py), instead of the whole conversation again."""
        env = env or _STRICT
        try:
            text = env.from_string(self.turn).render(**vars).strip() if self.turn.strip() else ""
        except jinja2.UndefinedError as e:
            raise AssertionError(f"prompt {self.tag}: {e}; pass it to turn_note()") from None
        return [{"role": "system", "content": text}] if text else []


_STRICT = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


class Domain:
    """A loaded domain pack. Lists are validated on first use; errors name the file."""

    def __init__(self, root: Path):
        self.root = root
        meta = read_yaml(root / "domain.yaml") or {}
        if not isinstance(meta, dict):
            raise UserError(f"{root / 'domain.yaml'}: expected a mapping")
        self.meta = meta
        self.name: str = meta.get("name", root.name)
        # registered now, so every lookup by name (score, calibrate, report, estimate) finds them
        specs = meta.get("metrics") or []
        if not isinstance(specs, list):
            raise UserError(f"{root / 'domain.yaml'}: metrics: expected a list of {{name, label, low, high, items, prompt}}")
        self.metrics: list[Metric] = declare_pack_metrics(
            root / "domain.yaml", validate_entries(root / "domain.yaml", specs, MetricSpec, "metric"))

    @property
    def system_prompt(self) -> str:
        """domain.yaml's system prompt, with `{{ protocol }}` (protocol.yaml) filled in when it has one."""
        text = str(self.meta.get("system_prompt", "")).strip()
        if "{{" not in text:
            return text
        return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(protocol=self.protocol).strip()

    @cached_property
    def protocol(self) -> Protocol | None:
        """The counseling protocol (protocol.yaml), or None when the pack has none."""
        path = self.root / "protocol.yaml"
        if not path.is_file():
            return None
        try:
            return Protocol.model_validate(read_yaml(path))
        except ValidationError as e:
            err = e.errors()[0]
            raise UserError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}; fix that entry") from None

    @property
    def attitudes(self) -> dict[str, str]:
        """domain.yaml `attitudes`: how the simulated client plays each attitude a generator can emit."""
        return {str(k): str(v).strip() for k, v in (self.meta.get("attitudes") or {}).items()}

    def attitude_instruction(self, attitude: str) -> str:
        """The domain's instruction for an attitude; a free-text attitude from a scenario file without
        one is played as written (never silently as another attitude, the old 'resistant' bug)."""
        return self.attitudes.get(attitude) or f"Let this attitude show in how you answer: {attitude}."

    def _terms(self, file: str) -> list[Term]:
        path = self.root / file
        data = read_yaml(path)
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a YAML list of {{id, name, description}} entries")
        out = validate_entries(path, data, Term)
        ids = [t.id for t in out]
        dup = {x for x in ids if ids.count(x) > 1}
        if dup:
            raise UserError(f"{path}: duplicate ids {sorted(dup)}; each id must be unique")
        return out

    @cached_property
    def techniques(self) -> list[Term]:
        return self._terms("techniques.yaml")

    @cached_property
    def distortions(self) -> list[Term]:
        return self._terms("distortions.yaml")

    @cached_property
    def emotions(self) -> list[str]:
        data = read_yaml(self.root / "emotions.yaml")
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise UserError(f"{self.root / 'emotions.yaml'}: expected a YAML list of emotion names")
        return data

    @cached_property
    def attributes(self) -> dict[str, Any]:
        data = read_yaml(self.root / "attributes.yaml")
        if not isinstance(data, dict):
            raise UserError(f"{self.root / 'attributes.yaml'}: expected a mapping attribute -> values")
        return data

    def data_file(self, name: str) -> Any:
        return read_yaml(self.root / name)

    def check(self, files: list[str]) -> list[str]:
        """Problems of the given pack files (missing or unreadable), one line each; [] when all load."""
        problems = []
        for f in files:
            if not (self.root / f).is_file():
                problems.append(f"{self.root / f}: missing")
                continue
            try:
                if f in ("techniques.yaml", "distortions.yaml"):
                    self._terms(f)
                elif f == "emotions.yaml":
                    _ = self.emotions
                elif f == "attributes.yaml":
                    _ = self.attributes
                elif f.startswith("prompts/") and _is_template(self.data_file(f)):
                    self.prompt(f.removeprefix("prompts/").removesuffix(".yaml"))
                else:
                    self.data_file(f)
            except UserError as e:
                problems.append(str(e))
        return problems

    def prompt(self, name: str) -> PromptTemplate:
        path = self.root / "prompts" / f"{name}.yaml"
        if not path.is_file():
            raise UserError(f"{path}: prompt '{name}' missing from domain '{self.name}'; copy it from domains/cbt/prompts")
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping with version, system, user")
        try:
            return PromptTemplate(name=name, version=str(data.pop("version", "1")), **data)
        except ValidationError as e:
            raise UserError(f"{path}: {first_error(e)}") from None


def _is_template(data: Any) -> bool:
    """prompts/ holds templates ({version, system, user}) and a few data files (trust_*.yaml)."""
    return isinstance(data, dict) and bool({"system", "user"} & set(data))


def load_domain(name_or_path: str) -> Domain:
    p = Path(name_or_path)
    root = p if p.is_dir() else DOMAINS_DIR / name_or_path
    if not (root / "domain.yaml").is_file():
        import difflib

        known = sorted(d.name for d in DOMAINS_DIR.iterdir() if (d / "domain.yaml").is_file())
        close = difflib.get_close_matches(str(name_or_path), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"domain: '{name_or_path}' is not a domain folder (with domain.yaml) nor a pack name; "
                        f"{hint}packs: {', '.join(known)}")
    return Domain(root)
