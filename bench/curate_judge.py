"""Judge benchmark: throughput on the embedded model and validity on ESConv.

Validity: the judge scores N published ESConv conversations (test.json) and N from
FailedESConv.json (conversations the ESConv authors rejected); a useful judge scores the
published ones higher (AUC of its mean score and of its realism score, published = positive).
Baseline in the same run: a judge-free heuristic (mean counselor-turn length in words) on the
same conversations. Throughput: judged sessions/min, against plain (unconstrained) generation
of the same prompts with the same max_tokens, measured in the same run on a few of them.

    .venv/bin/python bench/curate_judge.py                       # embedded SmolLM2, 30 + 30
    .venv/bin/python bench/curate_judge.py --config configs/openai.yaml --n 50   # an API-grade judge

SmolLM2-135M's scores are close to noise; the >= 0.7 AUC target is for API-grade judges.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from common import Result, data_file, record

from hybridtune.config import load_config
from hybridtune.context import open_run
from hybridtune.curate.judge import judge_messages, judge_one
from hybridtune.errors import StructuredOutputError
from hybridtune.records import Message, Session, stable_id


def esconv_sessions(path: Path, label: str, n: int, rng: random.Random) -> list[Session]:
    """ESConv dialogues as Sessions (seeker = user, supporter = assistant; same-speaker turns merged)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    out = []
    for i in sorted(rng.sample(range(len(data)), min(n, len(data)))):
        msgs: list[Message] = []
        for t in data[i]["dialog"]:
            role = "user" if t["speaker"] in ("usr", "seeker", "speaker") else "assistant"
            text = str(t.get("text") or t.get("content") or "").strip()
            if not text:
                continue
            if msgs and msgs[-1].role == role:
                msgs[-1].content += " " + text
            else:
                msgs.append(Message(role=role, content=text))
        out.append(Session(id=stable_id("esconv", label, i), source="real", messages=msgs, meta={"label": label}))
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    """Probability that a random positive outranks a random negative (ties count half)."""
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return round(wins / (len(pos) * len(neg)), 3)


def heuristic(s: Session) -> float:
    turns = s.turns("assistant")
    return sum(len(t.split()) for t in turns) / max(1, len(turns))


async def judge_all(ctx, sessions: list[Session]) -> tuple[dict[str, dict], int, float]:
    scores, failures, t0 = {}, 0, time.time()
    for s in sessions:  # one at a time: the in-process model serializes requests anyway
        try:
            scores[s.id] = await judge_one(ctx, s)
        except StructuredOutputError:
            failures += 1
    return scores, failures, time.time() - t0


async def plain_rate(ctx, sessions: list[Session]) -> float:
    """Sessions/min of unconstrained generation of the same prompts (no schema, no validation)."""
    t0 = time.time()
    for s in sessions:
        msgs, _ = judge_messages(ctx, s)
        await ctx.llm("judge").chat(msgs)
    return len(sessions) / (time.time() - t0) * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.yaml", help="experiment YAML whose `judge` role is benchmarked")
    ap.add_argument("--n", type=int, default=30, help="conversations of each class")
    ap.add_argument("--baseline-n", type=int, default=4, help="prompts for the plain-generation throughput baseline")
    ap.add_argument("--max-tokens", type=int, default=320, help="judge max_tokens (the verdict JSON needs ~230 SmolLM2 tokens)")
    ap.add_argument("--max-chars", type=int, default=3000, help="transcript characters shown to the judge")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    good = esconv_sessions(data_file("esconv", "test.json"), "published", args.n, rng)
    bad = esconv_sessions(data_file("esconv", "FailedESConv.json"), "failed", args.n, rng)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.config, [f"runs_dir={tmp}", "quiet=true", "llm.cache=false", "roles.judge.temperature=0",
                                        f"roles.judge.max_tokens={args.max_tokens}", f"curate.max_chars={args.max_chars}"])
        with open_run(cfg) as ctx:
            ctx.llms.check(["judge"])
            asyncio.run(ctx.llm("judge").chat([{"role": "user", "content": "hi"}], max_tokens=1))  # load the model first
            base = asyncio.run(plain_rate(ctx, (good + bad)[: args.baseline_n]))
            order = good + bad
            rng.shuffle(order)
            scores, failures, secs = asyncio.run(judge_all(ctx, order))
            model = ctx.llm("judge").model
    rate = len(order) / secs * 60
    pos = [scores[s.id] for s in good if s.id in scores]
    neg = [scores[s.id] for s in bad if s.id in scores]
    a_mean = auc([x["mean"] for x in pos], [x["mean"] for x in neg])
    a_real = auc([x["realism"] for x in pos], [x["realism"] for x in neg])
    a_heur = auc([heuristic(s) for s in good], [heuristic(s) for s in bad])
    cmd = f".venv/bin/python bench/curate_judge.py --config {args.config} --n {args.n}"
    note = (f"judge {model} ({args.config}); {len(pos)}+{len(neg)} of {args.n}+{args.n} judged, {failures} invalid after re-asks; "
            f"distinct mean scores: {len({x['mean'] for x in pos + neg})}")
    record("curate_judge", [
        Result("judge throughput (sessions/min, incl. re-asks)", f"{rate:.2f} sessions/min",
               f"plain generation of the same prompts: {base:.2f} sessions/min", round(rate / base, 3) if base else None,
               "recorded (no target)", None, cmd, note),
        Result("judge validity on ESConv: AUC of mean score, published vs failed", f"AUC {a_mean}",
               f"judge-free heuristic (counselor words/turn): AUC {a_heur}",
               round(a_mean / a_heur, 3) if a_mean and a_heur else None, ">= 0.7 (API-grade judge)",
               a_mean is not None and a_mean >= 0.7, cmd, note + f"; realism-score AUC {a_real}",
               extra={"auc_mean": a_mean, "auc_realism": a_real, "auc_heuristic": a_heur, "failures": failures}),
    ])


if __name__ == "__main__":
    main()
