"""Stage `scenarios`: concrete CBT situations for each persona, distortions checked, near-duplicates replaced.

Input: runs/<name>/personas/personas.jsonl. Output: runs/<name>/scenarios/scenarios.jsonl
(`Scenario` records: summary, terms (the pack's distortions), scenario, attitude, persona), scenario_drafts.jsonl
(every generated candidate), scenarios_rejected.jsonl (near-duplicates), failures.jsonl, summary.json.

    hybridtune scenarios -c configs/demo.yaml
    scens = await make_scenarios(ctx, st, personas, per_persona=1, seed=1007)   # evaluation set

Distortions are dealt over the set by quota (every distortion appears once slots allow), with
0..synth.max_distortions per scenario. With synth.scenario_checks the `judge` confirms each named
distortion appears; a scenario missing one is regenerated, and after synth.max_regenerations
it keeps only the confirmed distortions (the rest go to meta.unconfirmed). A candidate whose
embedding is within synth.near_duplicate_threshold of a kept one is rejected and its slot is
regenerated in the next round (synth.dedup_rounds).
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..context import Context, map_items, regenerate
from ..domain import Term
from ..errors import UserError
from ..records import Persona, Scenario, stable_id
from ..store import StageDir
from .sampling import deal_terms, load_attribute_spec


class ScenarioDraft(BaseModel):
    summary: str = Field(min_length=1)
    scenario: str = Field(min_length=1)


class DistortionItem(BaseModel):
    distortion: str
    present: bool
    evidence: str = ""


class DistortionCheck(BaseModel):
    items: list[DistortionItem]


async def check_distortions(ctx: Context, text: str, terms: list[Term], sample: int) -> list[str]:
    """Ids of `terms` the judge confirms are present in `text`."""
    if not terms:
        return []
    tpl = ctx.domain.prompt("synth_scenario_check")
    reply = await ctx.llm("judge").chat(tpl.render(scenario=text, distortions=terms), schema=DistortionCheck, sample=sample)
    want = {t.id for t in terms}
    return [i.distortion for i in reply.parsed.items if i.present and i.distortion in want]


async def write_scenario(ctx: Context, st: StageDir, key: str, persona: Persona, theme: str, attitude: str,
                         terms: list[Term], sample0: int) -> Scenario:
    """One scenario; regenerated while a named distortion is not confirmed."""
    cfg = ctx.cfg.synth
    tpl = ctx.domain.prompt("synth_scenario")
    tries = 0

    async def attempt(n: int) -> tuple[ScenarioDraft, list[str]]:
        nonlocal tries
        tries += 1
        draft = (await ctx.llm("generator").chat(
            tpl.render(persona=persona, theme=theme, distortions=terms), schema=ScenarioDraft, sample=n)).parsed
        confirmed = ([t.id for t in terms] if not cfg.scenario_checks
                     else await check_distortions(ctx, draft.scenario, terms, n))
        return draft, confirmed

    draft, confirmed = await regenerate(ctx, st, key, attempt, cfg.max_regenerations + 1, first=sample0,
                                        ok=lambda r: len(r[1]) == len(terms), rank=lambda r: len(r[1]))
    planned = [t.id for t in terms]
    return Scenario(
        id=key, persona_id=persona.id, persona=persona, theme=theme, summary=draft.summary,
        terms=[d for d in planned if d in confirmed], scenario=draft.scenario, attitude=attitude,
        meta={"planned_distortions": planned, "unconfirmed": [d for d in planned if d not in confirmed],
              "checked": cfg.scenario_checks, "attempts": tries},
        prompt_version=tpl.tag,
    )


def plan_slots(ctx: Context, personas: list[Persona], per_persona: int, seed: int) -> list[dict[str, Any]]:
    """One slot per (persona, j): theme, attitude and quota-dealt distortions."""
    cfg = ctx.cfg.synth
    spec = load_attribute_spec(ctx.domain)
    rng = random.Random(seed)
    slots = [{"persona": p, "j": j} for p in personas for j in range(per_persona)]
    terms = {t.id: t for t in ctx.domain.distortions}
    sizes = [rng.randint(cfg.min_distortions, cfg.max_distortions) for _ in slots]
    dealt = deal_terms(list(terms), sizes, rng) if slots else []
    for s, ids in zip(slots, dealt, strict=True):
        p = s["persona"]
        s["theme"] = p.attributes.get(spec.theme_attribute, "")
        s["attitude"] = p.attributes.get(spec.attitude_attribute or "", "neutral")
        s["terms"] = [terms[i] for i in ids]
    return slots


def _slot_key(ctx: Context, seed: int, slot: dict, rnd: int) -> str:
    return stable_id("scenario", ctx.domain.name, seed, slot["persona"].id, slot["j"], rnd)


async def make_scenarios(ctx: Context, st: StageDir, personas: list[Persona], per_persona: int, seed: int) -> list[Scenario]:
    """`per_persona` scenarios for each persona, resumable into `st`; near-duplicates replaced.

    Returns the kept scenarios in slot order; rejected candidates go to scenarios_rejected.jsonl."""
    from ..embed import embed

    cfg = ctx.cfg.synth
    slots = plan_slots(ctx, personas, per_persona, seed)
    kept: dict[int, Scenario] = {}
    kept_vecs: list[np.ndarray] = []
    rejected: list[dict] = []
    for rnd in range(cfg.dedup_rounds):
        todo = [i for i in range(len(slots)) if i not in kept]
        if not todo:
            break
        items = [(_slot_key(ctx, seed, slots[i], rnd), i) for i in todo]

        async def one(key: str, i: int, rnd: int = rnd) -> Scenario:
            s = slots[i]
            return await write_scenario(ctx, st, key, s["persona"], s["theme"], s["attitude"], s["terms"],
                                        sample0=rnd * (cfg.max_regenerations + 1))

        res = await map_items(ctx, st, items, one, "scenario_drafts.jsonl",
                              label=f"{st.name}: scenarios (round {rnd + 1})", concurrency=cfg.concurrency)
        slot_of = dict(items)
        got = [(slot_of[d.id], d) for d in res.records(Scenario)]
        vecs = embed([d.scenario for _, d in got]) if got else []
        for (i, d), v in zip(got, vecs, strict=True):
            sim = float(max((v @ u for u in kept_vecs), default=-1.0))
            if cfg.near_duplicate_threshold < 1 and sim >= cfg.near_duplicate_threshold:
                rejected.append({"id": d.id, "slot": i, "round": rnd, "similarity": round(sim, 4)})
                continue
            d.meta["round"] = rnd
            kept[i] = d
            kept_vecs.append(v)
    st.write_records("scenarios_rejected.jsonl", rejected)
    return [kept[i] for i in sorted(kept)]


def scenario_report(ctx: Context, scenarios: list[Scenario], st: StageDir, requested: int) -> dict[str, Any]:
    from collections import Counter

    dist = Counter(d for s in scenarios for d in s.terms)
    planned = sum(len(s.meta.get("planned_distortions", [])) for s in scenarios)
    confirmed = sum(len(s.terms) for s in scenarios)
    return {
        "requested": requested,
        "kept": len(scenarios),
        "near_duplicates_rejected": len(list(st.read_dicts("scenarios_rejected.jsonl"))),
        "invalid_attempts": len(list(st.read_dicts("failures.jsonl"))),
        "distortions_planned": planned,
        "distortions_confirmed": confirmed,
        "distortion_confirm_rate": round(confirmed / planned, 3) if planned else None,
        "distortion_coverage": {t.id: dist.get(t.id, 0) for t in ctx.domain.distortions},
        "checked": ctx.cfg.synth.scenario_checks,
    }


async def run(ctx: Context, st: StageDir) -> dict:
    """Stage entry: scenarios for the personas of the `personas` stage, seed cfg.seed."""
    personas = list(ctx.store.stage("personas").read("personas.jsonl", Persona))
    if not personas and ctx.cfg.synth.personas > 0:
        raise UserError(f"{ctx.store.path('personas', 'personas.jsonl')}: no personas; run `hybridtune personas` first")
    per = ctx.cfg.synth.scenarios_per_persona
    scenarios = await make_scenarios(ctx, st, personas, per, ctx.cfg.seed)
    st.write_records("scenarios.jsonl", scenarios)
    report = scenario_report(ctx, scenarios, st, len(personas) * per)
    st.write_summary(report)
    ctx.log(f"scenarios: {report['kept']}/{report['requested']} kept, {report['near_duplicates_rejected']} near-duplicates")
    return {k: v for k, v in report.items() if not isinstance(v, dict)}
