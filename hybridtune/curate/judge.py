"""Stage `curate`: an LLM judge scores sessions, the layered crisis screen flags risk, and
a selection policy keeps the best sessions per stratum and queues the rest for human review.

Input : runs/<name>/synth/sessions.jsonl (Session; judged unless `curate.judge` is off),
        runs/<name>/real/sessions.jsonl (Session; judged only with `curate.judge_real`);
        every session is crisis-screened.
Output: runs/<name>/curate/
          judged.jsonl     Session + scores["judge"] (and ["judge2"]), one per judged session
          selected.jsonl   Session records kept by the policy (real and synthetic)
          review.jsonl     Session records queued for a person (flags, borderline, judge failures)
          rejected.jsonl   Session records the policy dropped (a reviewer may still accept them)
          decisions.jsonl  append-only reviewer decisions (written by `hybridtune review`)
          report.md        counts, score distributions, judge agreement

    hybridtune judge -c configs/demo.yaml          # or: hybridtune run configs/demo.yaml --stage curate
"""
from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field, create_model

from ..context import Context, map_items
from ..errors import StructuredOutputError
from ..meta import CurateMeta
from ..records import Session
from ..safety.screen import Screener, build_screener
from ..store import StageDir
from .config import CRITERIA, FLAGS
from .select import select_sessions, session_techniques

PROMPT = "curate_judge"
MIN_VERDICT_TOKENS = 280  # the verdict JSON is ~230 SmolLM2 tokens with short rationales (measured)


class Criterion(BaseModel):
    score: int = Field(ge=1, le=10)
    rationale: str = Field(max_length=240)


Flags = create_model("Flags", **{f: (bool, ...) for f in FLAGS})
JudgeVerdict = create_model(
    "JudgeVerdict", __doc__="The judge's structured reply (validated; invalid replies are re-asked by the LLM layer).",
    **{c: (Criterion, ...) for c in CRITERIA}, flags=(Flags, ...))


def transcript(session: Session, max_chars: int, labels: dict[str, str] | None = None) -> str:
    """Dialogue as 'client: ...' lines, cut at max_chars with the cut marked (the judge must know).
    A turn is one line whatever it holds (a newline in it cannot forge another speaker's line) and
    cannot close the prompt's <transcript> tag."""
    labels = labels or {"user": "client", "assistant": "counselor"}
    lines: list[str] = []
    used = 0
    msgs = [m for m in session.messages if m.role != "system"]
    for i, m in enumerate(msgs):
        content = " ".join(m.content.split()).replace("</transcript>", "</ transcript>")
        line = f"{labels.get(m.role, m.role)}: {content}"
        if used + len(line) > max_chars and lines:
            lines.append(f"[... {len(msgs) - i} more turns not shown]")
            break
        lines.append(line[:max_chars])
        used += len(line) + 1
    return "\n".join(lines)


def judge_messages(ctx: Context, session: Session) -> tuple[list[dict[str, str]], str]:
    tpl = ctx.domain.prompt(PROMPT)
    labels = ctx.domain.meta.get("speakers") or None
    msgs = tpl.render(transcript=transcript(session, ctx.cfg.curate.max_chars, labels),
                      techniques=", ".join(session_techniques(session)))
    return msgs, tpl.tag


def verdict_scores(v: JudgeVerdict, tag: str, model: str) -> dict[str, Any]:
    """The stored form: per-criterion scores and rationales, their mean, raised flags, provenance."""
    scores = {c: getattr(v, c).score for c in CRITERIA}
    return {
        **scores,
        "mean": round(sum(scores.values()) / len(scores), 3),
        "rationales": {c: getattr(v, c).rationale for c in CRITERIA},
        "flags": [f for f in FLAGS if getattr(v.flags, f)],
        "prompt": tag,
        "model": model,
    }


async def judge_one(ctx: Context, session: Session, endpoint: str | None = None) -> dict[str, Any]:
    """Judge one session; raises StructuredOutputError after the LLM layer's re-asks."""
    llm = ctx.llm("judge") if endpoint is None else ctx.llms.bind("judge2", ctx.cfg.roles["judge"], endpoint)
    msgs, tag = judge_messages(ctx, session)
    reply = await llm.chat(msgs, schema=JudgeVerdict, max_tokens=ctx.cfg.curate.max_tokens)
    return verdict_scores(reply.parsed, tag, reply.model)


async def crisis_screen(screener: Screener, session: Session) -> dict[str, Any]:
    """The layered crisis screen (hybridtune.safety.screen) over the client turns, max over turns, and the
    policy's action (only `crisis_reply` sends the session to review as crisis content: select.review_reasons)."""
    r = await screener.screen_session(session)
    return {"risk": r.risk, "categories": list(r.categories), "source": r.source,  # evidence is client text: not stored
            "action": r.model_extra["action"]}


def load_inputs(ctx: Context) -> tuple[list[Session], list[Session]]:
    synth = list(ctx.store.stage("synth").read("sessions.jsonl", Session))
    real = list(ctx.store.stage("real").read("sessions.jsonl", Session))
    return synth, real


def judging_line(synth: list, real: list, judge_synth: bool, judge_real: bool) -> str:
    """What the judge is about to read, with counts that add up (and what it skips)."""
    parts = [f"{len(synth)} synthetic"] if judge_synth else []
    parts += [f"{len(real)} real"] if judge_real else []
    skipped = [f"{len(real)} real (curate.judge_real=false)"] if real and not judge_real else []
    skipped += [f"{len(synth)} synthetic (curate.judge=false)"] if synth and not judge_synth else []
    n = (len(synth) if judge_synth else 0) + (len(real) if judge_real else 0)
    return (f"curate: judging {n} sessions" + (f" ({' + '.join(parts)})" if parts else "")
            + (f"; not judged: {', '.join(skipped)}" if skipped else ""))


async def run(ctx: Context, st: StageDir) -> dict:
    cc = ctx.cfg.curate
    synth, real = load_inputs(ctx)
    to_judge = (synth if cc.judge else []) + (real if cc.judge_real else [])
    ctx.log(judging_line(synth, real, cc.judge, cc.judge_real))
    limit = cc.max_tokens or ctx.cfg.roles["judge"].max_tokens
    if to_judge and limit < MIN_VERDICT_TOKENS:
        ctx.log(f"[yellow]judge max_tokens={limit} (curate.max_tokens / roles.judge.max_tokens): a verdict needs about "
                f"{MIN_VERDICT_TOKENS} tokens; cut replies fail validation and go to review. Raise it.[/yellow]")

    async def one(_key: str, s: Session) -> Session:
        scores = {**s.scores, "judge": await judge_one(ctx, s)}
        if cc.second_judge_endpoint:  # its failure must not lose the first verdict
            try:
                scores["judge2"] = await judge_one(ctx, s, endpoint=cc.second_judge_endpoint)
            except StructuredOutputError as e:
                scores["judge2"] = {"error": str(e)[:300]}
        return s.model_copy(update={"scores": scores})

    res = await map_items(ctx, st, [(s.id, s) for s in to_judge], one, "judged.jsonl",
                          label="judge", concurrency=cc.concurrency)
    judged = {s.id: s for s in st.read("judged.jsonl", Session)}
    failed = st.still_failed("judged.jsonl")
    pool: list[Session] = []
    screener = build_screener(ctx.cfg, ctx.llms, ctx.domain)
    for s in synth + real:  # the judged copy where there is one
        s = judged.get(s.id, s)
        s = s.model_copy(update={"scores": {**s.scores, "risk": await crisis_screen(screener, s)}})
        pool.append(s)
    sel = select_sessions(pool, cc, judge_failed=failed, judged_ids={s.id for s in to_judge})
    counts = {k: st.write_records(f"{k}.jsonl", v) for k, v in sel.items()}
    alpha = judge_agreement(list(judged.values())) if cc.second_judge_endpoint else None
    st.write_text("report.md", report_md(pool, sel, failed, alpha))
    return {**res.as_dict(), **counts, "judge_failed": len(failed), "krippendorff_alpha": alpha}


def judge_agreement(sessions: list[Session]) -> dict[str, float | None]:
    """Krippendorff's alpha (interval) between the two judges, per criterion and on the mean."""
    import krippendorff
    import numpy as np

    both = [s for s in sessions if "mean" in s.scores.get("judge", {}) and "mean" in s.scores.get("judge2", {})]
    out: dict[str, float | None] = {}
    for c in (*CRITERIA, "mean"):
        data = np.array([[s.scores["judge"][c] for s in both], [s.scores["judge2"][c] for s in both]], dtype=float)
        try:
            out[c] = round(float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval")), 3)
        except (ValueError, ZeroDivisionError):  # fewer than 2 units or no variance: undefined
            out[c] = None
    return out


def report_md(pool: list[Session], sel: dict[str, list[Session]], failed: set[str], alpha: dict | None) -> str:
    judged = [s for s in pool if "judge" in s.scores]
    lines = ["# Curation report", "",
             f"- sessions considered: {len(pool)} (judged {len(judged)}, judge failures {len(failed)})",
             *[f"- {k}: {len(v)}" for k, v in sel.items()], "",
             "Judge scores of a small embedded model (SmolLM2-135M) are close to noise; "
             "trust them only from an API-grade judge.", "",
             "| criterion | mean | median | min | max |", "|---|---|---|---|---|"]
    for c in (*CRITERIA, "mean"):
        vals = [s.scores["judge"][c] for s in judged]
        if vals:
            mean, med = statistics.mean(vals), statistics.median(vals)
            lines.append(f"| {c} | {mean:.2f} | {med:.2f} | {min(vals)} | {max(vals)} |")
    flags = Counter(f for s in judged for f in s.scores["judge"]["flags"])
    risks = Counter(s.scores.get("risk", {}).get("risk", "?") for s in pool)
    reasons = Counter(r for v in sel.values() for s in v for r in CurateMeta.of(s).reasons)
    lines += ["", f"Flags: {dict(flags) or 'none'}", f"Crisis screen: {dict(risks)}", f"Reasons: {dict(reasons)}"]
    if alpha is not None:
        lines += ["", f"Judge agreement (Krippendorff's alpha, interval): {alpha}"]
    return "\n".join(lines) + "\n"
