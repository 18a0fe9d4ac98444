"""Benchmark: the crisis-safety screen (issue 8): recall, false positives, latency.

1. Labelled set (tests/safety/data/labelled.jsonl, written for this project: direct, indirect,
   negated, idiomatic and history statements across the five categories, plus ordinary
   counseling turns): recall of high/imminent, false-positive rate (flagged high+) on
   ordinary/idiom/negated turns. Baseline, same run: a naive keyword matcher without
   negation or idiom handling.
2. AnnoMI client turns (../shared/data/annomi/AnnoMI-simple.csv, interlocutor == client;
   ordinary motivational-interviewing talk): share flagged high+, target <= 2%, against the
   same keyword baseline. (A flag here is not always false: a few AnnoMI clients do disclose.)
3. Latency per turn: rules alone (over the AnnoMI turns) vs rules + the model step on the
   embedded default (SmolLM2-135M in llama.cpp, judge max_tokens 120) over turns the rules
   cannot settle. Ratio = model-step latency / rules latency.

    .venv/bin/python bench/safety_screen.py [--model-turns 8]
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import time

from common import ROOT, SHARED, Result, record

from hybridtune.config import load_config
from hybridtune.llm import LLMPool
from hybridtune.safety.rules import RISK_ORDER, rule_screen
from hybridtune.safety.screen import screen

CMD = ".venv/bin/python bench/safety_screen.py --model-turns {n}"
LABELLED = ROOT / "tests" / "safety" / "data" / "labelled.jsonl"
NAIVE = re.compile(r"\b(?:kill\w*|suicid\w*|die|dying|dead|hurt\w*|cut\w*|self[- ]harm|abus\w*|hit\w*|beat\w*|"
                   r"rape\w*|overdos\w*|pills|gun|knife|chest pain|can'?t breathe)\b", re.I)


TUNED_NOTE = ("the rules were tuned on these lines: 'dev' half first, then failures of the 'test' half (first look: "
              "recall 87.9%, FP 2.6%), then the 'fresh' lines (first look: recall 21.1% of 19, FP 5.6% of 18); "
              "so this shows coverage of the listed phrasings, not generalisation")
FRESH2_NOTE = ("31 lines written after the last tuning and never tuned on: the honest estimate for new phrasings; "
               "cue-free crisis statements are missed by phrase rules and need the model step (safety.model_on: all "
               "with a strong model)")


def naive(text: str) -> bool:
    return bool(NAIVE.search(text))


def labelled_metrics(rows: list[dict]) -> dict:
    pos = [r for r in rows if RISK_ORDER[r["risk"]] >= 2]
    neg = [r for r in rows if r["kind"] in ("ordinary", "idiom", "negated")]
    out = {"n": len(rows), "positives": len(pos), "negatives": len(neg)}
    out["recall"] = sum(rule_screen(r["text"]).is_crisis for r in pos) / len(pos)
    out["fpr"] = sum(rule_screen(r["text"]).is_crisis for r in neg) / len(neg)
    out["naive_recall"] = sum(naive(r["text"]) for r in pos) / len(pos)
    out["naive_fpr"] = sum(naive(r["text"]) for r in neg) / len(neg)
    out["exact_level"] = sum(rule_screen(r["text"]).risk == r["risk"] for r in rows) / len(rows)
    return out


def annomi_turns() -> list[str] | None:
    path = SHARED / "annomi" / "AnnoMI-simple.csv"
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as f:
        return [r["utterance_text"] for r in csv.DictReader(f) if r["interlocutor"] == "client" and r["utterance_text"].strip()]


async def model_latency(texts: list[str]) -> tuple[float, dict]:
    cfg = load_config(None, ["roles.judge.max_tokens=120", "roles.judge.temperature=0", "endpoints.local.n_ctx=1024",
                             "llm.max_reasks=0", "llm.cache=false"])
    pool = LLMPool(cfg)
    judge = pool.role("judge")
    await screen("warm-up: I'm not suicidal", llm=judge, cfg=cfg.safety)  # model load is not per-turn latency
    sources: dict[str, int] = {}
    t0 = time.perf_counter()
    for t in texts:
        r = await screen(t, llm=judge, cfg=cfg.safety)
        sources[r.source] = sources.get(r.source, 0) + 1
    per = (time.perf_counter() - t0) / len(texts)
    await pool.aclose()
    return per, sources


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-turns", type=int, default=8, help="unsettled turns sent through the model step")
    args = ap.parse_args()
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    results = []
    splits = {
        "labelled set, tuned-on part (dev+test+fresh)": ([r for r in rows if r["split"] != "fresh2"], TUNED_NOTE),
        "labelled set, untouched part (fresh2)": ([r for r in rows if r["split"] == "fresh2"], FRESH2_NOTE),
    }
    for name, (subset, note) in splits.items():
        m = labelled_metrics(subset)
        results.append(Result(
            benchmark=f"{name}: recall of high/imminent (rules)", figure=f"{m['recall']:.1%} of {m['positives']}",
            baseline=f"naive keywords {m['naive_recall']:.1%}", ratio=round(m["recall"] / max(m["naive_recall"], 1e-9), 3),
            target=">= 90%", met=m["recall"] >= 0.90, command=CMD.format(n=args.model_turns), notes=note, extra=m))
        results.append(Result(
            benchmark=f"{name}: false positives on ordinary/idiom/negated turns (rules)",
            figure=f"{m['fpr']:.1%} of {m['negatives']}", baseline=f"naive keywords {m['naive_fpr']:.1%}",
            ratio=round(m["fpr"] / max(m["naive_fpr"], 1e-9), 3), target="<= 5%", met=m["fpr"] <= 0.05,
            command=CMD.format(n=args.model_turns), extra=m))
    turns = annomi_turns()
    if turns:
        t0 = time.perf_counter()
        flagged = [t for t in turns if rule_screen(t).is_crisis]
        rules_s = (time.perf_counter() - t0) / len(turns)
        unsettled = sum(not rule_screen(t).settled for t in turns)
        base = sum(naive(t) for t in turns) / len(turns)
        rate = len(flagged) / len(turns)
        results.append(Result(
            benchmark="AnnoMI client turns flagged high/imminent (rules)", figure=f"{rate:.2%} of {len(turns)}",
            baseline=f"naive keywords {base:.2%}", ratio=round(rate / max(base, 1e-9), 3), target="<= 2%",
            met=rate <= 0.02, command=CMD.format(n=args.model_turns),
            notes=f"{len(flagged)} flagged, some genuine disclosures; {unsettled} turns ({unsettled / len(turns):.1%}) "
                  "unsettled, i.e. would go to the model step",
            extra={"flagged": len(flagged), "unsettled": unsettled}))
    else:
        rules_s = None
    unsettled_texts = [r["text"] for r in rows if not rule_screen(r["text"]).settled][: args.model_turns]
    if rules_s is None:
        t0 = time.perf_counter()
        for r in rows:
            rule_screen(r["text"])
        rules_s = (time.perf_counter() - t0) / len(rows)
    if args.model_turns > 0 and unsettled_texts:
        per, sources = asyncio.run(model_latency(unsettled_texts))
        results.append(Result(
            benchmark="screen latency per turn, rules + model step (embedded SmolLM2-135M)",
            figure=f"{per * 1000:.0f} ms/turn", baseline=f"rules alone {rules_s * 1e6:.0f} us/turn",
            ratio=round(per / rules_s, 1), target="-", met=None, command=CMD.format(n=args.model_turns),
            notes=f"{len(unsettled_texts)} unsettled turns from the labelled set; outcome sources {sources}; "
                  "only unsettled turns pay this cost; the 135M model's verdicts are noise (see README)",
            extra={"model_s_per_turn": per, "rules_s_per_turn": rules_s, "sources": sources}))
    record("safety_screen", results)


if __name__ == "__main__":
    main()
