"""Patient-simulator check (run inside stage `calibrate`): does the simulated client stay in character?

Input: simulate/sessions.jsonl (Session, source="simulated", meta.variant, meta.scenario_id)
and eval_scenarios/scenarios.jsonl. For up to `evaluate.trust.simcheck_turns` client turns
of up to `simcheck_sessions` sessions: the `judge` decides (prompt trust_simcheck,
structured) whether the turn is consistent with the persona/scenario and whether the client
acts as the counselor; a regex heuristic (trust_role_patterns.yaml) flags role confusion
for free. Output: calibrate/simcheck.jsonl (TurnCheck) and the summary dict returned by
`check` (stored under "simcheck" in calibrate/summary.json).

    from hybridtune.evaluate.simcheck import check; summary = await check(ctx, st)
"""
from __future__ import annotations

import re
from collections import defaultdict

from pydantic import BaseModel, Field

from ..context import Context, map_items
from ..errors import TooManyFailures
from ..meta import SimMeta
from ..records import Record, Scenario, Session, stable_id
from ..store import StageDir
from .simulate import persona_text


class TurnJudgment(BaseModel):
    reason: str = Field(description="one sentence")
    consistent: bool
    acts_as_counselor: bool


class TurnCheck(Record):
    """One simulated client turn, checked."""

    session_id: str
    variant: str
    scenario_id: str
    index: int  # into Session.messages
    heuristic_counselor: bool
    consistent: bool
    acts_as_counselor: bool
    reason: str = ""
    judge_model: str = ""
    prompt: str = ""


def role_patterns(ctx: Context) -> list[re.Pattern]:
    data = ctx.domain.data_file("prompts/trust_role_patterns.yaml") or {}
    return [re.compile(p, re.I | re.M) for p in data.get("patterns", [])]


def looks_like_counselor(text: str, patterns: list[re.Pattern]) -> bool:
    """The cheap role-confusion heuristic: any counselor-style phrase in a client turn."""
    return any(p.search(text) for p in patterns)


def simulated_sessions(ctx: Context) -> list[Session]:
    """This configuration's simulated sessions (like simulate.load, but empty instead of an error)."""
    st = ctx.store.stage("simulate")
    current = st.read_json("current.json")
    keep = set(current) if current is not None else None
    rows = [s for s in st.read("sessions.jsonl", Session) if keep is None or s.id in keep]
    # file order is completion order (it differs after a crash-resume); pick the subset by
    # scenario then variant, so it is stable and keeps every variant on the same scenarios
    return sorted(rows, key=lambda s: (SimMeta.of(s).scenario_id, SimMeta.of(s).variant, s.id))


def client_turns(s: Session, limit: int) -> list[int]:
    return [i for i, m in enumerate(s.messages) if m.role == "user"][:limit]


def _context(s: Session, i: int, n: int = 6) -> str:
    prev = [m for m in s.messages[:i] if m.role != "system"][-n:]
    label = {"user": "Client", "assistant": "Counselor"}
    return "\n".join(f"{label[m.role]}: {m.content}" for m in prev) or "(the session starts with this turn)"


def shares(rows: list[TurnCheck]) -> dict:
    n = len(rows)
    if not n:
        return {"turns": 0, "inconsistent": None, "role_confusion_judge": None,
                "role_confusion_heuristic": None, "role_confusion_either": None}
    return {
        "turns": n,
        "inconsistent": sum(not r.consistent for r in rows) / n,
        "role_confusion_judge": sum(r.acts_as_counselor for r in rows) / n,
        "role_confusion_heuristic": sum(r.heuristic_counselor for r in rows) / n,
        "role_confusion_either": sum(r.acts_as_counselor or r.heuristic_counselor for r in rows) / n,
    }


async def check(ctx: Context, st: StageDir) -> dict:
    tc = ctx.cfg.evaluate.trust
    sessions = simulated_sessions(ctx)[: tc.simcheck_sessions]
    if not sessions:
        return {"ran": False, "note": "no simulated sessions (simulate stage not run or simcheck_sessions=0)"}
    scen = {s.id: s for s in ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario)}
    pats = role_patterns(ctx)
    tpl = ctx.domain.prompt("trust_simcheck")
    judge = ctx.llm("judge")
    items = [(stable_id("simcheck", s.id, i, judge.model, tpl.tag), (s, i))
             for s in sessions for i in client_turns(s, tc.simcheck_turns)]

    async def one(key: str, item: tuple[Session, int]) -> TurnCheck:
        s, i = item
        sm = SimMeta.of(s)
        sc = scen.get(sm.scenario_id)
        persona = persona_text(sc) if sc else "(unknown)"
        situation = f"{sc.summary}\n{sc.scenario}".strip() if sc else "(unknown)"
        turn = s.messages[i].content
        msgs = tpl.render(persona=persona, scenario=situation, context=_context(s, i), turn=turn)
        reply = await judge.chat(msgs, schema=TurnJudgment)
        j: TurnJudgment = reply.parsed
        return TurnCheck(id=key, session_id=s.id,
                         variant=sm.variant, scenario_id=sm.scenario_id,
                         index=i, heuristic_counselor=looks_like_counselor(turn, pats), consistent=j.consistent,
                         acts_as_counselor=j.acts_as_counselor, reason=j.reason[:500], judge_model=judge.model,
                         prompt=tpl.tag)

    failed_note = None
    try:
        await map_items(ctx, st, items, one, "simcheck.jsonl", label="simulator check")
    except TooManyFailures as e:  # a finding about the judge, reported; the run goes on to its report
        failed_note = str(e)
    keys = {k for k, _ in items}
    rows = [r for r in st.read("simcheck.jsonl", TurnCheck) if r.id in keys]
    by: dict[str, list[TurnCheck]] = defaultdict(list)
    for r in rows:
        by[r.variant].append(r)
    return {"ran": True, "sessions": len(sessions), "turns_planned": len(items), "failed": len(items) - len(rows),
            "note": failed_note,
            "judge_model": judge.model, "prompt": tpl.tag, "overall": shares(rows),
            "by_variant": {v: shares(rs) for v, rs in sorted(by.items())}}
