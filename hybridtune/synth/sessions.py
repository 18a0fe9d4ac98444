"""Stage `synth`: multi-turn synthetic sessions by role-play (or single pass), with planned technique coverage.

Input: runs/<name>/scenarios/scenarios.jsonl; runs/<name>/real/sessions.jsonl if present
(few-shot style exemplars, nearest by embedding, from the training side only: the real
sessions held out for testing, read from the `split` stage's split.json, are never shown: hybridtune/split.py). Output: runs/<name>/synth/sessions.jsonl
(`Session`, source="synthetic"; meta holds persona, scenario, planned and realised techniques,
length, how it ended, prompt versions), generated.jsonl (resume ledger), failures.jsonl, synth_report.md / summary.json.

    hybridtune synthesize -c configs/demo.yaml [--set synth.mode=single_pass]

Plan: session i takes scenario i mod len(scenarios), a target length in
[synth.min_exchanges, synth.max_exchanges] and synth.techniques_per_session techniques dealt
from the domain taxonomy so counts meet the quotas (synth.technique_weights). Role-play: the
`counselor` role opens and follows the domain's session plan (attributes.yaml: session_plan),
one phase and planned technique(s) per turn, given in a note after the dialogue (the prompt's
`turn` part, so the dialogue before it is read by the model once: llm/prefix.py); the `patient`
role holds persona, scenario and attitude (domain.yaml `attitudes`). Who speaks first is `opens` (default: the client, as in
real sessions and in the simulated evaluation). Near the target length the counselor wraps up; the session ends when a turn matches
synth.closing_pattern (closing detection) after synth.min_exchanges, or at target + 1 (a cap).
"""
from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..context import Context, map_items, regenerate
from ..domain import Domain
from ..errors import StructuredOutputError, UserError
from ..meta import SynthMeta
from ..records import Message, Persona, Scenario, Session, TurnAnnotation, stable_id
from ..split import ingested, read as read_split
from ..store import StageDir
from .sampling import PlanPhase, deal_terms, load_attribute_spec

STAGE_DIRECTION = re.compile(r"^\s*(\([^()]{0,200}\)|\*[^*]{0,200}\*|\[[^\[\]]{0,200}\])\s*")
SPEAKER_PREFIX = re.compile(r"^\s*\**(counselor|counsellor|therapist|client|patient|coach|rep|user|assistant)\**\s*:\s*", re.I)


class SessionPlan(BaseModel):
    index: int
    scenario_id: str
    techniques: list[str]
    exchanges: int
    exemplar_ids: list[str] = Field(default_factory=list)


class DialogueTurn(BaseModel):
    speaker: str = Field(min_length=1)  # the domain's speaker labels (domain.yaml: speakers)
    text: str = Field(min_length=1)


class Dialogue(BaseModel):
    turns: list[DialogueTurn] = Field(min_length=4)


class TurnLabel(BaseModel):
    index: int
    techniques: list[str] = Field(default_factory=list)


class TechniqueLabels(BaseModel):
    turns: list[TurnLabel]


# -- planning ------------------------------------------------------------------------------

def plan_sessions(ctx: Context, scenarios: list[Scenario], n: int, seed: int) -> list[SessionPlan]:
    """n session plans: scenarios round-robin, lengths drawn in range, techniques dealt by quota."""
    cfg = ctx.cfg.synth
    if n and not scenarios:
        raise UserError(f"{ctx.store.path('scenarios', 'scenarios.jsonl')}: no scenarios; run `hybridtune scenarios` first")
    rng = random.Random(seed)
    ids = [t.id for t in ctx.domain.techniques]
    dealt = deal_terms(ids, [cfg.techniques_per_session] * n, rng, cfg.technique_weights)
    return [SessionPlan(index=i, scenario_id=scenarios[i % len(scenarios)].id, techniques=dealt[i],
                        exchanges=rng.randint(cfg.min_exchanges, cfg.max_exchanges)) for i in range(n)]


def turn_schedule(plan: SessionPlan, phases: list[PlanPhase]) -> list[tuple[PlanPhase, list[str]]]:
    """(phase, technique ids) for each counselor turn 0..exchanges: phases spread evenly with the
    last one (closing) at the end; planned techniques placed on the middle turns, each at least once."""
    T = plan.exchanges + 1
    P = len(phases)
    sched = [(phases[min(P - 2, t * (P - 1) // max(T - 1, 1))] if P > 1 and t < T - 1 else phases[-1], []) for t in range(T)]
    mid = list(range(1, T - 1)) or list(range(T))
    k = len(plan.techniques)
    for j in range(max(k, len(mid))):
        techs = sched[mid[j % len(mid)]][1]
        if plan.techniques[j % k] not in techs:
            techs.append(plan.techniques[j % k])
    return sched


# -- few-shot exemplars --------------------------------------------------------------------

class Exemplars:
    """Real sessions of the training side (if the `real` stage ran), embedded once, retrievable
    by nearest topic. Held-out real sessions (the `split` stage's artefact) are never exemplars."""

    def __init__(self, ctx: Context):
        real = ingested(ctx.store)
        held = read_split(ctx.store, ctx.cfg, real) if real else None  # refused when missing or stale
        self.sessions = held.training_side(real) if held else []
        self.labels = ctx.domain.meta.get("speakers", {}) or {}
        self.max_messages = ctx.cfg.synth.fewshot_max_messages
        self.X = None
        if self.sessions and ctx.cfg.synth.fewshot:
            from ..embed import embed

            self.X = embed([s.text()[:1500] for s in self.sessions])

    def nearest(self, vec: np.ndarray, k: int) -> list[Session]:
        if self.X is None or k == 0:
            return []
        order = np.argsort(-(self.X @ vec))[:k]
        return [self.sessions[i] for i in order]

    def format(self, sessions: list[Session]) -> str:
        out = []
        for s in sessions:
            msgs = [m for m in s.messages if m.role != "system"][: self.max_messages]
            out.append("\n".join(f"{self.labels.get(m.role, m.role)}: {m.content[:300]}" for m in msgs))
        return "\n---\n".join(out)


def attitude_instruction(domain: Domain, sc: Scenario) -> str:
    """The scenario's own instruction (CACTUS) or the domain's for its attitude (an unknown one is an error)."""
    return str(sc.meta.get("attitude_instruction") or "") or domain.attitude_instruction(sc.attitude)


def align_opening(messages: list[Message], opens: str) -> list[Message]:
    """The dialogue opening with the configured speaker: when the client opens, leading counselor
    turns (a greeting before the client speaks) are dropped. A dialogue that opens with the client
    is kept when the counselor should open (no counselor words are invented)."""
    head = [m for m in messages if m.role == "system"][:1] if messages and messages[0].role == "system" else []
    body = messages[len(head):]
    if opens == "client":
        while body and body[0].role == "assistant":
            body = body[1:]
    return head + body


# -- role-play -------------------------------------------------------------------------------

def clean_turn(text: str) -> str:
    """One speaker's turn: strip a speaker label, stop where the model starts the other side."""
    text = SPEAKER_PREFIX.sub("", text.strip())
    lines = []
    for line in text.splitlines():
        if SPEAKER_PREFIX.match(line) and lines:
            break  # the model went on to write the other speaker's turn
        while STAGE_DIRECTION.match(line):  # "(smiles warmly)" / "*nods*": not speech, not for training
            line = STAGE_DIRECTION.sub("", line, count=1)
        lines.append(line)
    text = re.sub(r"\[/?END\]", "", "\n".join(lines))
    return re.sub(r"\n{3,}", "\n\n", text).strip().strip('"').strip()


class RolePlay:
    """One session between the patient and counselor roles (state of a single dialogue)."""

    def __init__(self, ctx: Context, plan: SessionPlan, scenario: Scenario, exemplar: str, phases: list[PlanPhase],
                 *, st: StageDir | None = None, key: str = ""):
        # st, key: where a replaced attempt is recorded (plain chat replies never raise StructuredOutputError)
        self.ctx, self.st, self.key, self.plan, self.scenario, self.exemplar = ctx, st, key, plan, scenario, exemplar
        self.schedule = turn_schedule(plan, phases)
        self.terms = {t.id: t for t in ctx.domain.techniques}
        self.closing_re = re.compile(ctx.cfg.synth.closing_pattern)
        self.dialogue: list[Message] = []  # assistant = counselor, user = patient
        self.counselor_tpl = ctx.domain.prompt("synth_counselor")
        self.patient_tpl = ctx.domain.prompt("synth_patient")

    async def _say(self, role: str, msgs: list[dict], t: int) -> str:
        async def attempt(n: int) -> str:
            return clean_turn((await self.ctx.llm(role).chat(msgs, sample=self.plan.index * 100 + t * 10 + n)).text)

        text = await regenerate(self.ctx, self.st, self.key, attempt, self.ctx.cfg.synth.max_regenerations + 1, ok=bool)
        if not text:
            raise ValueError(f"{role} gave only empty turns at turn {t}")
        return text

    async def counselor(self, t: int) -> str:
        phase, techs = self.schedule[min(t, len(self.schedule) - 1)]
        closing = t >= self.plan.exchanges
        protocol = self.ctx.domain.protocol
        step = protocol.step(phase.step) if protocol and phase.step else None
        vars = dict(system_prompt=self.ctx.system_prompt, exemplar=self.exemplar, phase=phase, step=step,
                    question=step.questions[(self.plan.index + t) % len(step.questions)] if step else "",
                    techniques=[self.terms[i] for i in techs], closing=closing)
        rendered = self.counselor_tpl.render(**vars)
        if self.dialogue:  # the opening cue stands in for a client turn only when the counselor opens
            rendered = rendered[:1]
        # this turn's guidance after the dialogue: the system message and dialogue stay a stable prefix
        msgs = [*rendered, *({"role": m.role, "content": m.content} for m in self.dialogue),
                *self.counselor_tpl.turn_note(**vars)]
        return await self._say("counselor", msgs, t)

    async def patient(self, t: int) -> str:
        sc = self.scenario
        closing = t > self.plan.exchanges  # the counselor has already wrapped up
        vars = dict(persona=sc.persona, scenario=sc, attitude=sc.attitude, closing=closing,
                    attitude_instruction=attitude_instruction(self.ctx.domain, sc))
        rendered = self.patient_tpl.render(**vars)
        flip = {"assistant": "user", "user": "assistant"}
        # opening the session, the client answers the template's cue; later, the counselor's turns
        msgs = [*(rendered if not self.dialogue else rendered[:1]),
                *({"role": flip[m.role], "content": m.content} for m in self.dialogue),
                *self.patient_tpl.turn_note(**vars)]
        return await self._say("patient", msgs, t)

    async def run(self) -> tuple[list[Message], str]:
        """Alternate turns until closing is detected (after min_exchanges) or the cap; returns (dialogue, ended_by)."""
        cap = self.plan.exchanges + 1  # one exchange of grace for a goodbye after the counselor's closing turn
        if self.ctx.cfg.opens == "client":
            self.dialogue.append(Message(role="user", content=await self.patient(0)))
        self.dialogue.append(Message(role="assistant", content=await self.counselor(0)))
        for t in range(1, cap + 1):
            p = await self.patient(t)
            self.dialogue.append(Message(role="user", content=p))
            c = await self.counselor(t)
            self.dialogue.append(Message(role="assistant", content=c))
            if t >= self.ctx.cfg.synth.min_exchanges and (self.closing_re.search(c) or self.closing_re.search(p)):
                return self.dialogue, "closing"
        return self.dialogue, "cap"


async def single_pass(ctx: Context, plan: SessionPlan, scenario: Scenario, exemplar: str,
                      phases: list[PlanPhase], sample: int) -> tuple[list[Message], str]:
    """One generator call writes the whole dialogue (cheaper; fewer, longer calls)."""
    tpl = ctx.domain.prompt("synth_single_pass")
    terms = {t.id: t for t in ctx.domain.techniques}
    d = (await ctx.llm("generator").chat(tpl.render(
        system_prompt=ctx.system_prompt, persona=scenario.persona, scenario=scenario, attitude=scenario.attitude,
        attitude_instruction=attitude_instruction(ctx.domain, scenario), opens=ctx.cfg.opens, plan=phases, techniques=[terms[i] for i in plan.techniques], exchanges=plan.exchanges, exemplar=exemplar),
        schema=Dialogue, sample=sample)).parsed
    msgs: list[Message] = []
    assistant = {"assistant", "counselor", str((ctx.domain.meta.get("speakers") or {}).get("assistant", "")).lower()}
    for turn in d.turns:
        role = "assistant" if turn.speaker.strip().lower() in assistant else "user"
        text = clean_turn(turn.text)
        if not text:
            continue
        if msgs and msgs[-1].role == role:  # merge a speaker's consecutive turns
            msgs[-1] = Message(role=role, content=f"{msgs[-1].content} {text}")
        else:
            msgs.append(Message(role=role, content=text))
    while msgs and msgs[-1].role == "user":  # a training dialogue ends on the counselor
        msgs.pop()
    msgs = align_opening(msgs, ctx.cfg.opens)
    if sum(m.role == "user" for m in msgs) < 1:
        raise StructuredOutputError("single pass: dialogue has no client turn", raw=d.model_dump_json()[:4000], attempts=1)
    closing = ctx.cfg.synth.closing_pattern
    return msgs, "closing" if any(re.search(closing, m.content) for m in msgs[-2:]) else "cap"


async def annotate(ctx: Context, messages: list[Message], sample: int) -> tuple[list[TurnAnnotation], str]:
    """Techniques each counselor turn actually used, by the annotator role (index = message index)."""
    tpl = ctx.domain.prompt("synth_annotate")
    labels = ctx.domain.meta.get("speakers", {}) or {}
    turns = [{"index": i if m.role == "assistant" else None, "speaker": labels.get(m.role, m.role), "text": m.content}
             for i, m in enumerate(messages) if m.role != "system"]
    reply = await ctx.llm("annotator").chat(tpl.render(techniques=ctx.domain.techniques, turns=turns),
                                            schema=TechniqueLabels, sample=sample)
    valid = {t.id for t in ctx.domain.techniques}
    counselor_idx = {i for i, m in enumerate(messages) if m.role == "assistant"}
    out = [TurnAnnotation(index=t.index, techniques=[x for x in t.techniques if x in valid])
           for t in reply.parsed.turns if t.index in counselor_idx]
    return [a for a in out if a.techniques], tpl.tag


# -- one session, the stage ------------------------------------------------------------------

async def write_session(ctx: Context, st: StageDir, key: str, plan: SessionPlan, scenario: Scenario,
                        exemplars: list[Session], ex: Exemplars, phases: list[PlanPhase]) -> Session:
    cfg = ctx.cfg.synth
    if scenario.persona is None:  # scenarios loaded from a file may carry no persona: the summary stands in
        scenario = scenario.model_copy(update={"persona": Persona(id=scenario.persona_id or scenario.id, attributes={},
                                                                  narrative=scenario.summary)})
    exemplar = ex.format(exemplars)
    prompts = {"patient": ctx.domain.prompt("synth_patient").tag, "counselor": ctx.domain.prompt("synth_counselor").tag}
    if cfg.mode == "single_pass":
        prompts = {"generator": ctx.domain.prompt("synth_single_pass").tag}
        dialogue, ended_by = await regenerate(
            ctx, st, key, lambda n: single_pass(ctx, plan, scenario, exemplar, phases, plan.index * 10 + n),
            cfg.max_regenerations + 1)
    else:
        dialogue, ended_by = await RolePlay(ctx, plan, scenario, exemplar, phases, st=st, key=key).run()
    messages = [Message(role="system", content=ctx.system_prompt), *dialogue] if ctx.system_prompt else dialogue
    annotations: list[TurnAnnotation] = []
    realised: list[str] | None = None
    meta_extra: dict[str, Any] = {}
    if cfg.annotate_realised:
        try:
            annotations, prompts["annotator"] = await annotate(ctx, messages, plan.index)
            realised = sorted({x for a in annotations for x in a.techniques})
        except StructuredOutputError as e:  # the session is still good; only its labels are missing
            meta_extra["annotation_error"] = str(e)[:300]
    meta = SynthMeta(
        domain=ctx.domain.name, mode=cfg.mode, persona_id=scenario.persona_id,
        persona_attributes=scenario.persona.attributes if scenario.persona else {},
        scenario_id=scenario.id, theme=scenario.theme, summary=scenario.summary,
        attitude=scenario.attitude, terms=scenario.terms,
        planned_techniques=plan.techniques, realised_techniques=realised,
        target_exchanges=plan.exchanges, exchanges=sum(m.role == "user" for m in dialogue),
        ended_by=ended_by, fewshot_ids=[s.id for s in exemplars], prompts=prompts,
        prompt_version=";".join(f"{k}={v}" for k, v in sorted(prompts.items())), **meta_extra)
    return Session(id=key, source="synthetic", messages=messages, annotations=annotations, meta=meta.dump())


async def make_sessions(ctx: Context, st: StageDir, scenarios: list[Scenario], n: int, seed: int) -> list[Session]:
    """n synthetic sessions over `scenarios`, resumable into `st` (sessions.jsonl)."""
    cfg = ctx.cfg.synth
    phases = load_attribute_spec(ctx.domain).session_plan
    plans = plan_sessions(ctx, scenarios, n, seed)
    by_id = {s.id: s for s in scenarios}
    ex = Exemplars(ctx)
    near: dict[str, list[Session]] = {}
    if ex.X is not None:
        from ..embed import embed

        V = embed([f"{s.summary} {s.scenario}" for s in scenarios])
        near = {s.id: ex.nearest(v, cfg.fewshot) for s, v in zip(scenarios, V, strict=True)}
    keys = [stable_id("session", ctx.domain.name, seed, cfg.mode, ctx.cfg.opens, p.model_dump()) for p in plans]

    async def one(key: str, plan: SessionPlan) -> Session:
        return await write_session(ctx, st, key, plan, by_id[plan.scenario_id],
                                   near.get(plan.scenario_id, []), ex, phases)

    # generated.jsonl keeps every finished session (resume); sessions.jsonl is this config's set
    res = await map_items(ctx, st, list(zip(keys, plans, strict=True)), one, "generated.jsonl",
                          label=f"{st.name}: sessions ({cfg.mode})", concurrency=cfg.concurrency)
    return res.records(Session)


async def run(ctx: Context, st: StageDir) -> dict:
    """Stage entry: synth.sessions sessions over the `scenarios` stage's scenarios, seed cfg.seed."""
    from .report import write_report

    scenarios = list(ctx.store.stage("scenarios").read("scenarios.jsonl", Scenario))
    sessions = await make_sessions(ctx, st, scenarios, ctx.cfg.synth.sessions, ctx.cfg.seed)
    st.write_records("sessions.jsonl", sessions)
    summary = write_report(ctx, st, sessions)
    ctx.log(f"synth: {len(sessions)}/{ctx.cfg.synth.sessions} sessions; report {st.file('synth_report.md')}")
    return summary
