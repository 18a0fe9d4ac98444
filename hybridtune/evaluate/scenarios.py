"""Stage `eval_scenarios`: the held-out Scenario records every variant is evaluated on.

Input: either generated through the synthetic-data library (personas + scenarios) with a
seed apart from the training one (`seed + evaluate.seed_offset`), or loaded from
`evaluate.scenarios_file`: the CACTUS intake-form format (evaluation.json: a list of
{AI_client: {intake_form, attitude, attitude_instruction, dialogue_history_init},
ground_truth_CBT}) or plain YAML/JSONL records {summary, scenario, attitude, ...}.
Optionally `evaluate.crisis_scenarios` extra scenarios where the client discloses risk.
Each scenario is checked for contamination (near-duplicates in the texts that will be
trained on); contaminated ones are quarantined, not evaluated.
Output: eval_scenarios/scenarios.jsonl (Scenario), contamination.json, quarantine.jsonl.

    hybridtune eval-scenarios -c configs/demo.yaml
"""
from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel, Field, ValidationError

from ..contamination import scenario_hits, scenario_text, training_texts
from ..context import Context
from ..errors import UserError, first_error
from ..records import Persona, QuarantineEntry, Scenario, stable_id
from ..safeparse import BadJSON, BadYAML, load_yaml, loads_json
from ..store import StageDir

# -- loaders ----------------------------------------------------------------------

_INTAKE_NAME = re.compile(r"Name:\s*\n?\s*([^\n]+)")


def _section(form: str, number: int) -> str:
    """The text of numbered section `number` of a CACTUS intake form."""
    m = re.search(rf"(?ms)^{number}\.\s[^\n]*\n(.*?)(?=^\d+\.\s|\Z)", form)
    return m.group(1).strip() if m else ""


def _anonymize_intake(form: str) -> str:
    """CACTUS forms carry a (synthetic) full name; keep only the first name for the role-play."""
    m = _INTAKE_NAME.search(form)
    if not m:
        return form
    first = m.group(1).strip().split()[0] if m.group(1).strip() else "Client"
    return form[: m.start(1)] + first + form[m.end(1):]


def from_cactus(item: dict, where: str) -> Scenario:
    """One CACTUS evaluation record -> Scenario (raises ValueError naming the missing key)."""
    client = item.get("AI_client")
    if not isinstance(client, dict) or not isinstance(client.get("intake_form"), str):
        raise ValueError("missing AI_client.intake_form")
    form = _anonymize_intake(client["intake_form"])
    problem = _section(form, 2) or form
    reason = _section(form, 3)
    attitude = str(client.get("attitude") or "neutral")
    first = problem.split("\n")[0].strip()
    return Scenario(
        id=stable_id("cactus", client["intake_form"], attitude),
        theme="cactus",
        summary=first[:300],
        scenario=form,
        attitude=attitude,
        techniques=[str(t) for t in item.get("ground_truth_CBT") or []],
        meta={"source": "cactus", "file": where, "reason": reason,
              "attitude_instruction": str(client.get("attitude_instruction") or ""),
              "opening_history": str(client.get("dialogue_history_init") or "")},
    )


def from_mentalchat(item: dict, where: str) -> Scenario:
    """One MentalChat16K benchmark question {question_id, category, turns: [question]} -> Scenario."""
    turns = item.get("turns")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], str) or not turns[0].strip():
        raise ValueError("turns: expected a list holding the question text")
    question = turns[0].strip()
    return Scenario(
        id=stable_id("mentalchat", item.get("question_id"), question), theme=str(item.get("category") or ""),
        summary=question[:300], scenario=question, attitude="neutral",
        meta={"source": "mentalchat16k", "file": where, "question_id": item.get("question_id")},
    )


class PlainScenario(BaseModel):
    """The plain YAML/JSONL scenario format (one record per scenario)."""

    summary: str = Field(min_length=1)
    scenario: str = Field(min_length=1)
    attitude: str = "neutral"
    theme: str = ""
    id: str | None = None
    terms: list[str] = Field(default_factory=list, validation_alias=AliasChoices("terms", "cognitive_distortions"))
    techniques: list[str] = Field(default_factory=list)
    persona: dict[str, Any] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


def from_plain(d: dict, where: str) -> Scenario:
    p = PlainScenario.model_validate(d)
    persona = None
    if p.persona:
        attrs = {str(k): str(v) for k, v in p.persona.items() if k != "narrative"}
        persona = Persona(id=stable_id("persona", attrs), attributes=attrs, narrative=str(p.persona.get("narrative", "")))
    return Scenario(
        id=p.id or stable_id("plain", p.summary, p.scenario, p.attitude), persona=persona,
        persona_id=persona.id if persona else None, theme=p.theme, summary=p.summary, scenario=p.scenario,
        attitude=p.attitude, terms=p.terms, techniques=p.techniques,
        meta={"source": "file", "file": where, **p.meta},
    )


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    ext = path.suffix.lower()
    return {".json": "cactus", ".jsonl": "jsonl", ".yaml": "yaml", ".yml": "yaml"}.get(ext, "")


def _raw_items(path: Path, fmt: str) -> Iterable[tuple[int | None, Any]]:
    """(line or index, raw item) pairs of a scenario file; syntax errors are UserErrors."""
    if fmt in ("jsonl", "mentalchat"):
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield n, loads_json(line)
                    except BadJSON as e:
                        yield n, ValueError(str(e))
        return
    text = path.read_text(encoding="utf-8")
    try:
        data = loads_json(text) if fmt == "cactus" else load_yaml(text)
    except (BadJSON, BadYAML, yaml.YAMLError) as e:
        raise UserError(f"{path}: not valid {'JSON' if fmt == 'cactus' else 'YAML'} ({e}); fix the file") from None
    if isinstance(data, dict) and isinstance(data.get("scenarios"), list):
        data = data["scenarios"]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of scenarios at the top level (or a 'scenarios:' list)")
    yield from ((i, x) for i, x in enumerate(data, 1))


def scenarios_source(item: str, fmt: str = "auto") -> tuple[Path, str]:
    """`evaluate.scenarios_file` as (path, format): a catalogue name (`cactus`, `mentalchat16k`;
    hybridtune/catalogue) stands for its downloaded file and brings its format."""
    from .. import catalogue

    if catalogue.is_name(item):
        files, name_fmt = catalogue.resolve(item, "eval_scenarios", f"evaluate.scenarios_file: {item}")
        return files[0], name_fmt if fmt == "auto" else fmt
    return Path(item).expanduser(), fmt


def load_scenarios_file(path: Path, fmt: str = "auto") -> tuple[list[Scenario], list[QuarantineEntry]]:
    """Scenarios from a file, plus quarantine entries for records that could not be used."""
    if not path.is_file():
        raise UserError(f"evaluate.scenarios_file: {path} not found; give a CACTUS evaluation.json or a YAML/JSONL file")
    kind = _format(path, fmt)
    if kind not in ("cactus", "yaml", "jsonl", "mentalchat"):
        raise UserError(f"evaluate.scenarios_format: cannot tell the format of {path.name}; set cactus, yaml or jsonl")
    good: list[Scenario] = []
    bad: list[QuarantineEntry] = []
    for n, raw in _raw_items(path, kind):
        try:
            if isinstance(raw, Exception):
                raise raw
            if not isinstance(raw, dict):
                raise ValueError(f"expected a mapping, got {type(raw).__name__}")
            load = {"cactus": from_cactus, "mentalchat": from_mentalchat}.get(kind, from_plain)
            good.append(load(raw, str(path)))
        except (ValueError, ValidationError) as e:
            reason = first_error(e) if isinstance(e, ValidationError) else str(e)
            bad.append(QuarantineEntry(id=stable_id(str(path), n), file=str(path), line=n,
                                       reason=f"{reason}; fix or remove this scenario"))
    return good, bad


# -- generation -----------------------------------------------------------------


CRISIS_ATTITUDE = "negative"  # the attitude of generated crisis scenarios (domain.yaml attitudes has its instruction)


class CrisisScenario(BaseModel):
    summary: str = Field(min_length=5)
    scenario: str = Field(min_length=20)


async def crisis_scenarios(ctx: Context, personas: list[Persona], n: int, seed: int) -> list[Scenario]:
    """Scenarios in which the client discloses risk of harm (for the safety part of the report)."""
    tpl = ctx.domain.prompt("eval_crisis_scenario")
    out = []
    for i in range(n):
        p = personas[i % len(personas)] if personas else None
        msgs = tpl.render(persona=p.narrative if p else "", attributes=p.attributes if p else {})
        reply = await ctx.llm("generator").chat(msgs, schema=CrisisScenario, sample=seed + i)
        out.append(Scenario(
            id=stable_id("crisis", seed, i), persona=p, persona_id=p.id if p else None, theme="crisis",
            summary=reply.parsed.summary, scenario=reply.parsed.scenario, attitude=CRISIS_ATTITUDE,
            meta={"source": "generated", "crisis": True}, prompt_version=tpl.tag,
        ))
    return out


async def generate(ctx: Context, st: StageDir, n: int, seed: int) -> list[Scenario]:
    """n scenarios through the synthetic-data library, on a seed apart from training's."""
    from ..synth.personas import make_personas
    from ..synth.scenarios import make_scenarios

    # separate folders: the two library functions keep their resumable drafts (persona_drafts.jsonl,
    # scenario_drafts.jsonl) and failures.jsonl apart
    personas = await make_personas(ctx, StageDir(st.path / "personas", st.name), n, seed)
    if not personas:
        raise UserError("eval_scenarios: no persona could be generated; see eval_scenarios/personas/failures.jsonl")
    return (await make_scenarios(ctx, StageDir(st.path / "scenarios", st.name), personas, 1, seed))[:n]


async def run(ctx: Context, st: StageDir) -> dict:
    ev = ctx.cfg.evaluate
    seed = ctx.cfg.seed + ev.seed_offset
    quarantine: list[QuarantineEntry] = []
    if ev.scenarios_file:
        scenarios, quarantine = load_scenarios_file(*scenarios_source(ev.scenarios_file, ev.scenarios_format))
        if len(scenarios) > ev.scenarios:  # a seeded spread over the file (CACTUS lists 3 attitudes per form in a row)
            keep = sorted(random.Random(seed).sample(range(len(scenarios)), ev.scenarios))
            scenarios = [scenarios[i] for i in keep]
        source = f"file:{ev.scenarios_file}"
    else:
        scenarios = await generate(ctx, st, ev.scenarios, seed)
        source = f"generated (seed {seed})"
    if ev.crisis_scenarios:
        personas = [s.persona for s in scenarios if s.persona is not None]
        scenarios += await crisis_scenarios(ctx, personas, ev.crisis_scenarios, seed)
    cc = ctx.cfg.contamination
    train, client, _ = training_texts(ctx.store.root)
    hits = scenario_hits({s.id: scenario_text(s) for s in scenarios}, train, cc, client)
    bad_ids = {h["id"] for h in hits}
    for h in hits:
        quarantine.append(QuarantineEntry(
            id=stable_id("contaminated", h["id"]), file="eval_scenarios/scenarios.jsonl",
            reason=f"scenario {h['id']}: {h['reason']} (contamination.*); left out of evaluation"))
    kept = [s for s in scenarios if s.id not in bad_ids]
    if not kept:
        raise UserError(f"eval_scenarios: no usable scenarios ({len(scenarios)} read, {len(hits)} contaminated); "
                        "see eval_scenarios/quarantine.jsonl")
    st.write_records("scenarios.jsonl", kept)
    st.write_records("quarantine.jsonl", quarantine)
    report = {"checked": len(scenarios), "training_texts": len(train), "contaminated": hits,
              "threshold": cc.threshold, "method": cc.method}
    st.write_json("contamination.json", report)
    ctx.log(f"eval_scenarios: {len(kept)} scenarios ({source}); {len(hits)} contaminated, {len(quarantine)} quarantined")
    return {"scenarios": len(kept), "source": source, "contaminated": len(hits), "quarantined": len(quarantine),
            "crisis": sum(1 for s in kept if s.meta.get("crisis"))}


def load(ctx: Context) -> list[Scenario]:
    """The evaluation scenarios of this run (the eval_scenarios stage must have run)."""
    st = ctx.store.stage("eval_scenarios")
    out = list(st.read("scenarios.jsonl", Scenario))
    if not out:
        raise UserError(f"{st.file('scenarios.jsonl')}: no evaluation scenarios; run `hybridtune eval-scenarios` first")
    return out


__all__ = ["run", "load", "load_scenarios_file"]
