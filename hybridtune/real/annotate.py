"""LLM steps of the real stage, all through the `annotator` role with structured output:

- `annotate_sessions`: per turn, counselor techniques (domain `techniques.yaml`) or client
  emotion + cognitive distortions (`emotions.yaml`, `distortions.yaml`), plus cues.
  Resumable via `map_items` into `annotations.jsonl`; bounded by `real.annotate.max_sessions`
  and `max_turns_per_session`.
- `attribute_with_llm`: for caption sessions whose word-based speaker attribution is unsure,
  ask which alternating speaker is the counselor (only with a strong model: `attribution.llm`).
- `score_quality`: optional 1-5 quality score per session (`real.filters.llm_quality_min`).

Input: scrubbed `Session`s (no raw PII is ever sent). Output: `TurnRecord`s / `QualityRecord`s.
"""
from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, Field, create_model

from ..context import Context, map_items
from ..records import Record, Session, TurnAnnotation, stable_id
from ..store import StageDir
from .raw import RawSession

SPEAKER = {"assistant": "Counselor", "user": "Client"}


class TurnRecord(Record):
    """One annotated turn (stored in annotations.jsonl, merged into Session.annotations)."""

    session_id: str
    annotation: TurnAnnotation
    prompt: str


class QualityRecord(Record):
    session_id: str
    score: int
    reason: str = ""
    prompt: str


class Quality(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = ""


class Attribution(BaseModel):
    counselor: Literal["S1", "S2"]


@cache
def _schemas(tech: tuple[str, ...], emo: tuple[str, ...], dist: tuple[str, ...]) -> tuple[type[BaseModel], type[BaseModel]]:
    """Per-domain schemas: the ids are enums, so a schema-constrained backend can only answer valid ids."""
    counselor = create_model(
        "CounselorTurn",
        techniques=(list[Literal[tech]], Field(default_factory=list, max_length=3)),  # type: ignore[valid-type]
        cues=(list[str], Field(default_factory=list, max_length=3)),
    )
    client = create_model(
        "ClientTurn",
        emotion=(Literal[emo], ...),  # type: ignore[valid-type]
        distortions=(list[Literal[dist]], Field(default_factory=list, max_length=3)),  # type: ignore[valid-type]
        cues=(list[str], Field(default_factory=list, max_length=3)),
    )
    return counselor, client


def embedded(ctx: Context, role: str) -> bool:
    """Is `role` served by the in-process embedded model (a 135M model whose labels are noise)?"""
    cfg = ctx.cfg
    return cfg.endpoints[cfg.roles[role].endpoint].backend == "llamacpp"


def annotate_enabled(ctx: Context) -> bool:
    """`real.annotate.enabled`; auto = on unless the annotator is the embedded model (said once in the log)."""
    cfg = ctx.cfg.real
    if not cfg.llm:
        return False
    if cfg.annotate.enabled == "auto":
        if embedded(ctx, "annotator"):
            ctx.log("[yellow]real: model annotation is off on the embedded model[/yellow] (its labels are noise and it "
                    "reads ~150 tokens/s); set real.annotate.enabled=true to force it, or bind `annotator` to a real endpoint")
            return False
        return True
    return bool(cfg.annotate.enabled)


def ask_llm_about_speakers(ctx: Context) -> bool:
    """`real.attribution.llm`; auto = only when the annotator is not the embedded model."""
    cfg = ctx.cfg.real
    mode = cfg.attribution.llm
    return cfg.llm and (not embedded(ctx, "annotator") if mode == "auto" else bool(mode))


def turn_items(ctx: Context, sessions: list[Session]) -> list[tuple[str, tuple[Session, int]]]:
    """(key, (session, message index)) work items, bounded by the config."""
    cfg = ctx.cfg.real.annotate
    items = []
    for s in sessions[: cfg.max_sessions]:
        idx = [i for i, m in enumerate(s.messages) if m.role in SPEAKER]
        for i in idx[: cfg.max_turns_per_session]:
            items.append((stable_id("annotate", s.id, i), (s, i)))
    return items


async def annotate_turn(ctx: Context, key: str, s: Session, i: int) -> TurnRecord:
    """One turn (message i of s) through the `annotator`: counselor techniques, or client emotion
    and distortions, constrained to the domain's ids."""
    dom = ctx.domain
    tmpl = dom.prompt("real_annotate_turn")
    counselor_schema, client_schema = _schemas(tuple(t.id for t in dom.techniques), tuple(dom.emotions),
                                               tuple(d.id for d in dom.distortions))
    k = ctx.cfg.real.annotate.context_turns
    m = s.messages[i]
    context = [{"speaker": SPEAKER.get(x.role, x.role), "content": x.content} for x in s.messages[max(0, i - k):i]]
    msgs = tmpl.render(context=context, speaker=SPEAKER[m.role], turn=m.content, techniques=dom.techniques,
                       emotions=dom.emotions, distortions=dom.distortions)
    schema = counselor_schema if m.role == "assistant" else client_schema
    reply = await ctx.llm("annotator").chat(msgs, schema=schema)
    fields = {k: list(dict.fromkeys(v)) if isinstance(v, list) else v for k, v in reply.parsed.model_dump().items()}
    ann = TurnAnnotation(index=i, **fields)  # repeated ids (small models loop) kept once
    return TurnRecord(id=key, session_id=s.id, annotation=ann, prompt=tmpl.tag)


async def annotate_sessions(ctx: Context, st: StageDir, sessions: list[Session]) -> dict:
    tmpl = ctx.domain.prompt("real_annotate_turn")

    async def one(key: str, item: tuple[Session, int]) -> TurnRecord:
        return await annotate_turn(ctx, key, *item)

    items = turn_items(ctx, sessions)
    conc = ctx.cfg.real.annotate.concurrency or ctx.cfg.endpoints[ctx.cfg.roles["annotator"].endpoint].max_in_flight
    res = await map_items(ctx, st, items, one, "annotations.jsonl", label="real: annotate turns",
                          concurrency=conc)
    return {"turns": len(items), **res.as_dict(), "prompt": tmpl.tag}


async def score_quality(ctx: Context, st: StageDir, sessions: list[Session]) -> dict:
    tmpl = ctx.domain.prompt("real_quality")
    llm = ctx.llm("annotator")

    async def one(key: str, s: Session) -> QualityRecord:
        text = s.text()[:6000]  # a bounded prompt: the start of a long session says enough about its quality
        reply = await llm.chat(tmpl.render(transcript=text), schema=Quality)
        return QualityRecord(id=key, session_id=s.id, score=reply.parsed.score,
                             reason=reply.parsed.reason[:300], prompt=tmpl.tag)

    items = [(stable_id("quality", s.id), s) for s in sessions]
    res = await map_items(ctx, st, items, one, "quality.jsonl", label="real: quality")
    return {"sessions": len(items), **res.as_dict(), "prompt": tmpl.tag}


async def attribute_with_llm(ctx: Context, raw: RawSession) -> None:
    """Ask the annotator which alternating speaker is the counselor; flip cue-based roles if it disagrees.

    Only turns attributed from their words (no speaker name) are touched. A failed or invalid reply
    leaves the cue-based roles as they are, and says so in the session's attribution meta.
    """
    att = raw.meta.setdefault("attribution", {})
    guessed = [t for t in raw.turns if not t.speaker]
    if len(guessed) < 2:
        return
    first_role = guessed[0].role
    n = ctx.cfg.real.attribution.llm_turns
    shown = [{"speaker": "S1" if t.role == first_role else "S2", "content": t.text[:300]} for t in guessed[:n]]
    tmpl = ctx.domain.prompt("real_attribute_speakers")
    try:
        reply = await ctx.llm("annotator").chat(tmpl.render(turns=shown), schema=Attribution)
    except Exception as e:  # noqa: BLE001 -- attribution keeps the word-based roles; a bad reply must not drop the session
        from ..errors import UserError

        if isinstance(e, UserError):
            raise
        att.update(llm="failed", llm_error=type(e).__name__)
        return
    s1_is_counselor = reply.parsed.counselor == "S1"
    if s1_is_counselor != (first_role == "assistant"):
        for t in guessed:
            t.role = "user" if t.role == "assistant" else "assistant"
        att["llm"] = "flipped"
    else:
        att["llm"] = "agreed"
    att["method"] = "words+llm"
    att["prompt"] = tmpl.tag
