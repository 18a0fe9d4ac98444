"""Stage `simulate`: a simulated client talks with every counselor variant on every scenario.

Input: eval_scenarios/scenarios.jsonl, runs/<name>/models.json (variants), the mix
training sets (contamination check). For each scenario x variant the `patient` role plays
the client (persona, scenario, attitude; prompt eval_patient); who opens is `opens` (default
the client, as in the training data); the variant counsels under the shared CBT system prompt (`ctx.system_prompt`). A conversation
ends when the counselor closes (`evaluate.close_pattern`) or after `evaluate.max_turns`
counselor turns. The comparison is paired: every variant sees the same scenarios, the same
patient prompt, and the same sampling seeds turn by turn.
Output: simulate/sessions.jsonl (Session, source="simulated", meta: variant, scenario_id,
end_reason, ...), simulate/contamination.json, failures.jsonl.

    hybridtune simulate -c configs/demo.yaml
"""
from __future__ import annotations

import re
from collections import Counter

from ..contamination import scenario_hits, scenario_text, training_texts
from ..context import Context, map_items
from ..errors import UserError
from ..llm import LLM
from ..meta import SimMeta
from ..records import Message, ModelEntry, Scenario, Session, stable_id
from ..registry import counselor_llm, declared_entries
from ..store import StageDir
from ..synth.sessions import attitude_instruction
from . import scenarios as scen


def persona_text(s: Scenario) -> str:
    """What the simulated client knows about themself (a CACTUS intake form is in `scenario`)."""
    if s.persona is None:
        return "(described in your situation below)"
    attrs = ", ".join(f"{k}: {v}" for k, v in s.persona.attributes.items())
    return "\n".join(x for x in (s.persona.narrative.strip(), attrs) if x)


def patient_prompt(ctx: Context, s: Scenario) -> tuple[list[dict[str, str]], str]:
    tpl = ctx.domain.prompt("eval_patient")
    msgs = tpl.render(scenario=s, persona=persona_text(s), attitude=s.attitude,
                      attitude_instruction=attitude_instruction(ctx.domain, s), opens=ctx.cfg.opens)
    return msgs, tpl.tag


def variants(ctx: Context) -> dict[str, ModelEntry]:
    """The variants to evaluate: every declared one, in declared order (all must be registered)."""
    return declared_entries(ctx)


async def converse(ctx: Context, s: Scenario, variant: str, counselor: LLM, sid: str) -> Session:
    """One simulated session. Sample index = counselor turns so far for both roles, so the seeds
    match across variants; when the client opens (`opens`, as in training data) its opening (same
    prompt, same seed) is identical for every variant. When the counselor opens, its first turn
    reaches the patient after the template's cue."""
    ev = ctx.cfg.evaluate
    close = re.compile(ev.close_pattern)
    patient = ctx.llm("patient")
    ptrail, tag = patient_prompt(ctx, s)
    messages = [Message(role="system", content=ctx.system_prompt)]
    end_reason, turns = "max_turns", 0
    if ctx.cfg.opens == "counselor":
        first = (await counselor.chat([m.model_dump() for m in messages], sample=0)).text.strip()
        messages.append(Message(role="assistant", content=first))
        ptrail[-1] = {**ptrail[-1], "content": f"{ptrail[-1]['content']}\n\n{first}"}
        turns = 1
    opening = (await patient.chat(ptrail, sample=0)).text.strip()
    messages.append(Message(role="user", content=opening))
    ptrail = [*ptrail, {"role": "assistant", "content": opening}]
    while turns < ev.max_turns:
        reply = (await counselor.chat([m.model_dump() for m in messages], sample=turns)).text.strip()
        messages.append(Message(role="assistant", content=reply))
        turns += 1
        if close.search(reply):
            end_reason = "counselor_closed"
            break
        if turns == ev.max_turns:
            break
        ptrail.append({"role": "user", "content": reply})
        answer = (await patient.chat(ptrail, sample=turns)).text.strip()
        if not answer:
            end_reason = "patient_silent"
            break
        ptrail.append({"role": "assistant", "content": answer})
        messages.append(Message(role="user", content=answer))
    return Session(id=sid, source="simulated", messages=messages, meta=SimMeta(
        variant=variant, scenario_id=s.id, end_reason=end_reason, counselor_turns=turns,
        max_turns=ev.max_turns, opens=ctx.cfg.opens, patient_prompt=tag, patient_model=patient.model,
        counselor_model=counselor.model, seed=ctx.cfg.seed, attitude=s.attitude,
        crisis=bool(s.meta.get("crisis"))).dump())


def session_key(ctx: Context, s: Scenario, entry: ModelEntry) -> str:
    """Stable id of one conversation: changes when the scenario, model or turn limit changes."""
    return stable_id("simulate", s.id, entry.variant, entry.model, entry.adapter, entry.data_hash,
                     ctx.cfg.evaluate.max_turns, ctx.cfg.seed, ctx.cfg.opens)


def check_contamination(ctx: Context, st: StageDir, scenarios: list[Scenario]) -> list[Scenario]:
    """Drop scenarios near-duplicated in the final training sets (mix/*/train|valid.jsonl),
    with the same check as every stage (hybridtune/contamination.py, `contamination.*`)."""
    cc = ctx.cfg.contamination
    train, client, files = training_texts(ctx.store.root, final_only=True)
    hits = scenario_hits({s.id: scenario_text(s) for s in scenarios}, train, cc, client)
    bad = {h["id"] for h in hits}
    st.write_json("contamination.json", {
        "checked_scenarios": len(scenarios), "training_sessions": len(train), "files": [str(f) for f in files],
        "threshold": cc.threshold, "method": cc.method, "contaminated_scenarios": sorted(bad), "hits": hits})
    if bad:
        ctx.log(f"[yellow]simulate: {len(bad)} scenario(s) near-duplicate training data; left out[/yellow]")
    return [s for s in scenarios if s.id not in bad]


async def run(ctx: Context, st: StageDir) -> dict:
    scenarios = check_contamination(ctx, st, scen.load(ctx))
    if not scenarios:
        raise UserError("simulate: every evaluation scenario is contaminated; see simulate/contamination.json")
    var = variants(ctx)
    llms = {name: counselor_llm(ctx, entry) for name, entry in var.items()}
    items = [(session_key(ctx, s, e), (s, name)) for s in scenarios for name, e in var.items()]

    async def one(key: str, item: tuple[Scenario, str]):
        s, name = item
        return await converse(ctx, s, name, llms[name], key)

    res = await map_items(ctx, st, items, one, "sessions.jsonl", label="simulate",
                          concurrency=ctx.cfg.evaluate.concurrency)
    keys = {k for k, _ in items}
    st.write_json("current.json", sorted(keys))  # ids of this configuration (older ones may linger in the file)
    sessions = [x for x in st.read("sessions.jsonl", Session) if x.id in keys]
    ends = Counter(SimMeta.of(x).end_reason for x in sessions)
    return {"conversations": len(sessions), "scenarios": len(scenarios), "variants": list(var),
            **res.as_dict(), "end_reasons": dict(ends)}


def load(ctx: Context) -> list[Session]:
    """Simulated sessions of this run's current configuration."""
    st = ctx.store.stage("simulate")
    current = st.read_json("current.json")
    out = [x for x in st.read("sessions.jsonl", Session) if current is None or x.id in set(current)]
    if not out:
        raise UserError(f"{st.file('sessions.jsonl')}: no simulated sessions; run `hybridtune simulate` first")
    return out
