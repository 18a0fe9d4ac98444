"""Stage `personas`: quota-sampled attributes -> LLM-written personas, checked and measured.

Input: the domain's attributes.yaml (hybridtune/domains/<domain>/attributes.yaml).
Output: runs/<name>/personas/personas.jsonl (`Persona` records), persona_drafts.jsonl (each slot's final
attempt, kept or not), personas_dropped.jsonl (drafts below the thresholds), failures.jsonl, summary.json.

    hybridtune personas -c configs/demo.yaml
    personas = await make_personas(ctx, st, n=50, seed=1007)   # e.g. held-out evaluation personas

Each persona: attributes sampled so that every value meets its quota over the set, a narrative
from the `generator` role (prompt synth_persona), then (synth.persona_checks) a correctness
check against the attributes and a naturalness rating from the `judge` role. A persona that
fails validation or a check is regenerated (next sample index, same attributes, so quotas
hold) up to synth.max_regenerations times, then dropped; both are counted in the report.
"""
from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, Field

from ..context import Context, map_items, regenerate
from ..errors import TooManyFailures
from ..records import Persona, stable_id
from ..store import StageDir
from .sampling import entropy_ratio, load_attribute_spec, sample_attributes


class PersonaDraft(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    narrative: str = Field(min_length=1)


class PersonaCheck(BaseModel):
    mismatches: list[str] = Field(default_factory=list)
    consistent: bool


class Naturalness(BaseModel):
    score: int = Field(ge=1, le=10)
    reason: str = ""


async def judge_naturalness(ctx: Context, text: str, kind: str, sample: int = 0) -> Naturalness:
    tpl = ctx.domain.prompt("synth_naturalness")
    reply = await ctx.llm("judge").chat(tpl.render(text=text, kind=kind), schema=Naturalness, sample=sample)
    return reply.parsed


async def check_persona(ctx: Context, attributes: dict[str, str], narrative: str, sample: int) -> dict[str, Any]:
    """Correctness (does the narrative match its attributes) and naturalness, from the judge."""
    tpl = ctx.domain.prompt("synth_persona_check")
    chk = (await ctx.llm("judge").chat(tpl.render(attributes=attributes, narrative=narrative),
                                       schema=PersonaCheck, sample=sample)).parsed
    nat = await judge_naturalness(ctx, narrative, "client persona", sample)
    mismatches = [m for m in chk.mismatches if m in attributes]  # ignore names the judge invented
    return {
        "consistent": bool(chk.consistent and not mismatches),
        "mismatches": mismatches,
        "naturalness": nat.score,
        "naturalness_reason": nat.reason[:300],
        "check_prompts": [tpl.tag, ctx.domain.prompt("synth_naturalness").tag],
    }


def passes(cfg, p: Persona) -> bool:
    """A persona is kept when checks are off, it was not checked, or it passed both checks."""
    q = p.quality
    if not cfg.persona_checks or "naturalness" not in q:
        return True
    return bool(q.get("consistent")) and q["naturalness"] >= cfg.min_naturalness


async def write_persona(ctx: Context, st: StageDir, key: str, attributes: dict[str, str]) -> Persona:
    """One persona, regenerated (same attributes, next sample) until it passes the checks.

    Returns the passing attempt or, if none passes, the last valid one (filtered out later by
    `passes`, so a changed threshold is applied on rerun without regenerating)."""
    cfg = ctx.cfg.synth
    tpl = ctx.domain.prompt("synth_persona")
    history: list[dict] = []  # the checks of earlier attempts that did not pass

    async def attempt(n: int) -> Persona:
        draft = (await ctx.llm("generator").chat(tpl.render(attributes=attributes), schema=PersonaDraft,
                                                  sample=n)).parsed
        quality: dict[str, Any] = {"attempts": n + 1}
        if cfg.persona_checks:
            quality |= await check_persona(ctx, attributes, draft.narrative, n)
        quality["failed_attempts"] = list(history)
        persona = Persona(id=key, attributes=attributes, narrative=f"{draft.name}: {draft.narrative}".strip(),
                          quality=quality, prompt_version=tpl.tag, name=draft.name)
        if not passes(cfg, persona):
            history.append({k: quality.get(k) for k in ("consistent", "mismatches", "naturalness")})
        return persona

    return await regenerate(ctx, st, key, attempt, cfg.max_regenerations + 1, ok=lambda p: passes(cfg, p))


async def make_personas(ctx: Context, st: StageDir, n: int, seed: int) -> list[Persona]:
    """n quota-sampled personas, resumable into `st` (persona_drafts.jsonl); returns those that pass, in order.

    A separate `seed` gives a separate, reproducible set (evaluation uses its own)."""
    spec = load_attribute_spec(ctx.domain)
    rows = sample_attributes(spec, n, random.Random(seed))
    items = [(stable_id("persona", ctx.domain.name, seed, i, row), row) for i, row in enumerate(rows)]

    async def one(key: str, row: dict) -> Persona:
        return await write_persona(ctx, st, key, row)

    res = await map_items(ctx, st, items, one, "persona_drafts.jsonl", label=f"{st.name}: personas",
                          concurrency=ctx.cfg.synth.concurrency)
    drafts = res.records(Persona)
    st.write_records("personas_dropped.jsonl", [p for p in drafts if not passes(ctx.cfg.synth, p)])
    return [p for p in drafts if passes(ctx.cfg.synth, p)]


def persona_quality(ctx: Context, personas: list[Persona], st: StageDir, requested: int) -> dict[str, Any]:
    """Diversity (attribute coverage + entropy, embedding diversity), correctness, naturalness, counts."""
    from ..embed import embed, mean_pairwise_distance, vendi_score

    spec = load_attribute_spec(ctx.domain)
    coverage = {}
    for attr, weights in spec.attributes.items():
        vals = [p.attributes.get(attr, "") for p in personas]
        coverage[attr] = {"covered": len(set(vals) & set(weights)), "values": len(weights),
                          "entropy": round(entropy_ratio(vals, len(weights)), 3)}
    X = embed([p.narrative for p in personas]) if personas else None
    checked = [p.quality for p in personas if "naturalness" in p.quality]
    failures = list(st.read_dicts("failures.jsonl"))
    return {
        "requested": requested,
        "kept": len(personas),
        "dropped": len(list(st.read_dicts("personas_dropped.jsonl"))),
        "invalid_attempts": len(failures),
        "regenerated": sum(1 for p in personas if p.quality.get("attempts", 1) > 1),
        "checked": sum(1 for p in personas if "naturalness" in p.quality),
        "attribute_coverage": coverage,
        "vendi_score": round(vendi_score(X), 3) if X is not None else 0.0,
        "mean_pairwise_cosine_distance": round(mean_pairwise_distance(X), 4) if X is not None else 0.0,
        "correct_rate": round(sum(q["consistent"] for q in checked) / len(checked), 3) if checked else None,
        "naturalness_mean": round(sum(q["naturalness"] for q in checked) / len(checked), 2) if checked else None,
    }


async def run(ctx: Context, st: StageDir) -> dict:
    """Stage entry: synth.personas personas with seed cfg.seed -> personas.jsonl + summary.json."""
    n = ctx.cfg.synth.personas
    personas = await make_personas(ctx, st, n, ctx.cfg.seed)
    st.write_records("personas.jsonl", personas)
    report = persona_quality(ctx, personas, st, n)
    st.write_summary(report)
    if n and report["dropped"] / n > ctx.cfg.llm.max_failure_rate:
        raise TooManyFailures(
            f"personas: {report['dropped']} of {n} personas failed the quality checks (> llm.max_failure_rate="
            f"{ctx.cfg.llm.max_failure_rate}); see {st.file('personas_dropped.jsonl')}. Lower synth.min_naturalness, use a "
            "stronger judge/generator, or set synth.persona_checks=false")
    ctx.log(f"personas: {report['kept']}/{n} kept, {report['dropped']} dropped, vendi {report['vendi_score']}")
    return {k: v for k, v in report.items() if not isinstance(v, dict)}
