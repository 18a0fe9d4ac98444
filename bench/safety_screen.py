"""Benchmark: the layered crisis screen (issue 17): recall of at-risk people, false alarms, latency.

Configurations, each measured in the same run: `rules` (phrase rules alone, the baseline) and
`rules + learned` (the default CPU screen: rules plus the embedder + linear head of
hybridtune/safety/learned.py); `+ moderation` when OPENAI_API_KEY is set (OpenAI moderation
endpoint), `+ guard` with --guard-url (a Llama Guard model behind vLLM). A layer that cannot
run here is listed as not run, with the reason.

1. Held-out split of the learned layer's labelled set (hybridtune/safety/data/crisis_statements.jsonl,
   split "test": never trained on, thresholds not chosen on it): person-level recall (each
   statement or post is one person; a post is screened by sentence windows), high or imminent;
   false alarms on its hard negatives (figures of speech, third parties, resolved past,
   clinical talk, negations, lyrics, fiction, ordinary counseling talk).
2. The project's older labelled crisis lines (tests/safety/data/labelled.jsonl, written for the
   rules; the rules were tuned on all but `fresh2`, the learned layer never saw any of it):
   recall of its high/imminent lines, false alarms on its ordinary/idiom/negated lines.
3. AnnoMI client turns (`data_file("annomi", "AnnoMI-simple.csv")`, public domain), split by transcript
   (learned_train.annomi_half): the `eval` half, which neither the head nor its thresholds ever saw,
   is the false-alarm measurement (target <= 2%); the `calib` half (training negatives, thresholds)
   is shown for comparison only. ESConv test-split seeker turns (CC BY-NC 4.0, read in place for this
   measurement only, never trained on) as a second real false-alarm set.
4. Latency per turn, one turn at a time as in chat, over AnnoMI turns: rules alone vs rules +
   learned; wall and CPU time, torch's default threads (the layer scores a turn on one thread itself;
   bench/safety_latency.py measures the same and splits the CPU into forward, head and other threads).

    .venv/bin/python bench/safety_screen.py [--latency-turns 400] [--cache DIR] [--guard-url http://127.0.0.1:8200/v1]

--cache keeps the embedder's vectors of the accuracy passes (sections 1-3) on disk, keyed by the exact
window text, so a rerun after retraining only the head costs seconds; the latency pass (4) always
encodes every turn afresh (the layer's in-process window cache is emptied first).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from common import ROOT, Result, data_file, latency, record

from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.learned import load_learned
from hybridtune.safety.learned_train import NEGATIVE, POSITIVE, annomi_client_turns, annomi_half, load_statements
from hybridtune.safety.screen import Screener

CMD = ".venv/bin/python bench/safety_screen.py --latency-turns {n}"
OLD_SET = ROOT / "tests" / "safety" / "data" / "labelled.jsonl"
CRISIS = ("high", "imminent")


def flagged(screener: Screener, texts: list[str], step: int = 64) -> list[bool]:
    out: list[bool] = []
    for i in range(0, len(texts), step):
        out += [r.risk in CRISIS for r in asyncio.run(screener.screen_many(texts[i:i + step]))]
    return out


def rate(xs: list[bool]) -> float:
    return sum(xs) / max(1, len(xs))


def ratio(x: float, base: float) -> float | None:
    return round(x / base, 2) if base else None  # no ratio against a zero baseline


def esconv_test() -> list[str]:
    out = []
    for line in data_file("esconv", "test.json").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out += [t["text"] for t in json.loads(line)["dialog"] if t["speaker"] == "usr" and t["text"].strip()]
    return out


def disk_cached(encode, folder):
    """`encode` with its vectors kept in folder/embeddings.npz (the same file learned_train --cache writes),
    and the function that writes new ones there."""
    import numpy as np

    path = folder / "embeddings.npz"
    memo: dict = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            memo.update(zip(z["texts"].tolist(), z["X"], strict=True))

    def cached(texts: list[str]):
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, encode(todo), strict=True))
        return np.stack([memo[t] for t in texts])

    def save():
        if not memo:
            return
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, texts=np.array(list(memo)), X=np.stack(list(memo.values())))

    return cached, save


def configs(args) -> tuple[dict[str, Screener], dict[str, str]]:
    from hybridtune.config import EndpointConfig
    from hybridtune.safety.providers import GuardLayer, ModerationLayer

    base = SafetyConfig()
    out = {"rules": Screener(SafetyConfig(learned=False)), "rules + learned": Screener(base)}
    skipped = {}
    if os.environ.get("OPENAI_API_KEY"):
        ep = EndpointConfig(backend="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
        out["rules + learned + moderation"] = Screener(base, providers=[ModerationLayer(ep, "openai", base)])
    else:
        skipped["moderation"] = "not run here: no OPENAI_API_KEY on this machine (the layer is tested against the mock server)"
    if args.guard_url:
        ep = EndpointConfig(backend="openai", base_url=args.guard_url, model=args.guard_model)
        out["rules + learned + guard"] = Screener(base, providers=[GuardLayer(ep, "guard", base)])
    else:
        skipped["guard"] = "not run here: no vLLM-served guard model on this machine (pass --guard-url)"
    return out, skipped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-turns", type=int, default=400, help="AnnoMI turns screened one at a time for latency")
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping embeddings of the accuracy passes")
    ap.add_argument("--guard-url", default=None, help="OpenAI-compatible URL of a vLLM-served Llama Guard model")
    ap.add_argument("--guard-model", default="meta-llama/Llama-Guard-3-8B")
    args = ap.parse_args()
    cmd = CMD.format(n=args.latency_turns)  # --cache only saves time (same vectors): not part of the command
    screeners, skipped = configs(args)
    layer = load_learned(None)  # the layer every Screener with the default head uses (same cache key as Screener.cpu)
    encode, single = layer.encode, layer.single_thread
    save = None
    if args.cache:
        (layer.encode, save), layer.single_thread = disk_cached(encode, args.cache), False
    rows = load_statements()
    test = [r for r in rows if r["split"] == "test"]
    pos, neg = [r for r in test if r["level"] in POSITIVE], [r for r in test if r["level"] in NEGATIVE]
    old = [json.loads(x) for x in OLD_SET.read_text(encoding="utf-8").splitlines()]
    old_pos = [r for r in old if r["risk"] in CRISIS]
    old_neg = [r for r in old if r["kind"] in ("ordinary", "idiom", "negated")]
    fresh2 = [r for r in old_pos if r["split"] == "fresh2"]
    annomi = annomi_client_turns()
    ev = [(tid, t) for tid, t in annomi if annomi_half(tid) == "eval"]
    turns, transcripts = [t for _, t in ev], [tid for tid, _ in ev]
    calib = [t for tid, t in annomi if annomi_half(tid) == "calib"]
    es = esconv_test()
    m: dict[str, dict] = {}
    for name, s in screeners.items():
        t0 = time.time()
        fp = flagged(s, [r["text"] for r in pos])
        fn = flagged(s, [r["text"] for r in neg])
        fa = flagged(s, turns)
        per_tx: dict[str, bool] = {}
        for tx, f in zip(transcripts, fa, strict=True):
            per_tx[tx] = per_tx.get(tx, False) or f
        m[name] = {
            "recall_test": rate(fp), "n_test_pos": len(pos),
            "recall_by_level": {lv: rate([f for r, f in zip(pos, fp, strict=True) if r["level"] == lv]) for lv in POSITIVE},
            "fa_test_neg": rate(fn), "n_test_neg": len(neg),
            "fa_by_kind": {k: rate([f for r, f in zip(neg, fn, strict=True) if r["level"] == k]) for k in NEGATIVE},
            "recall_old": rate(flagged(s, [r["text"] for r in old_pos])), "n_old_pos": len(old_pos),
            "recall_fresh2": rate(flagged(s, [r["text"] for r in fresh2])), "n_fresh2": len(fresh2),
            "fa_old": rate(flagged(s, [r["text"] for r in old_neg])), "n_old_neg": len(old_neg),
            "fa_annomi": rate(fa), "n_annomi": len(turns), "annomi_flagged": sum(fa),
            "annomi_transcripts_flagged": rate(list(per_tx.values())), "n_transcripts": len(per_tx),
            "fa_annomi_calib": rate(flagged(s, calib)), "n_annomi_calib": len(calib),
            "fa_esconv_test": rate(flagged(s, es)), "n_esconv": len(es), "seconds": round(time.time() - t0, 1),
        }
        print(name, json.dumps({k: v for k, v in m[name].items() if not isinstance(v, dict)}), flush=True)
    base = m["rules"]
    results = []
    for name, x in m.items():
        if name == "rules":
            continue
        results += [
            Result(benchmark=f"held-out split of the learned set: at-risk people flagged high/imminent ({name})",
                   figure=f"{x['recall_test']:.1%} of {x['n_test_pos']}", baseline=f"rules {base['recall_test']:.1%}",
                   ratio=ratio(x["recall_test"], base["recall_test"]), target=">= 85%",
                   met=x["recall_test"] >= 0.85, command=cmd,
                   notes="per level: " + ", ".join(f"{k} {v:.0%}" for k, v in x["recall_by_level"].items())
                         + "; rules: " + ", ".join(f"{k} {v:.0%}" for k, v in base["recall_by_level"].items()),
                   extra={"layered": x, "rules": base}),
            Result(benchmark=f"held-out split of the learned set: hard negatives flagged ({name})",
                   figure=f"{x['fa_test_neg']:.1%} of {x['n_test_neg']}", baseline=f"rules {base['fa_test_neg']:.1%}",
                   ratio=ratio(x["fa_test_neg"], base["fa_test_neg"]), target="-", met=None, command=cmd,
                   notes="per kind: " + ", ".join(f"{k} {v:.0%}" for k, v in x["fa_by_kind"].items())),
            Result(benchmark=f"older labelled crisis lines (tests/safety/data/labelled.jsonl), recall high/imminent ({name})",
                   figure=f"{x['recall_old']:.1%} of {x['n_old_pos']}; fresh2 {x['recall_fresh2']:.1%} of {x['n_fresh2']}",
                   baseline=f"rules {base['recall_old']:.1%}; fresh2 {base['recall_fresh2']:.1%}",
                   ratio=ratio(x["recall_fresh2"], base["recall_fresh2"]), target=">= 85%",
                   met=x["recall_old"] >= 0.85, command=cmd,
                   notes="the rules were tuned on all but fresh2 (so their figure there is not generalisation); the "
                         "learned layer never saw this file; ratio = fresh2 recall vs rules"),
            Result(benchmark=f"older labelled lines: ordinary/idiom/negated flagged ({name})",
                   figure=f"{x['fa_old']:.1%} of {x['n_old_neg']}", baseline=f"rules {base['fa_old']:.1%}",
                   ratio=ratio(x["fa_old"], base["fa_old"]), target="<= 5%", met=x["fa_old"] <= 0.05,
                   command=cmd),
            Result(benchmark=f"AnnoMI client turns, eval half (never trained or thresholded on), flagged high/imminent ({name})",
                   figure=f"{x['fa_annomi']:.2%} of {x['n_annomi']}", baseline=f"rules {base['fa_annomi']:.2%}",
                   ratio=ratio(x["fa_annomi"], base["fa_annomi"]), target="<= 2%",
                   met=x["fa_annomi"] <= 0.02, command=cmd,
                   notes=f"{x['annomi_flagged']} turns in {x['n_transcripts']} transcripts; transcripts with a flag "
                         f"{x['annomi_transcripts_flagged']:.1%} (rules {base['annomi_transcripts_flagged']:.1%}); "
                         "a few AnnoMI clients do disclose, so not every flag is false. For comparison, the calib half "
                         f"(training negatives and thresholds): {x['fa_annomi_calib']:.2%} of {x['n_annomi_calib']}"),
            Result(benchmark=f"ESConv test-split seeker turns flagged high/imminent ({name})",
                   figure=f"{x['fa_esconv_test']:.2%} of {x['n_esconv']}", baseline=f"rules {base['fa_esconv_test']:.2%}",
                   ratio=ratio(x["fa_esconv_test"], base["fa_esconv_test"]), target="-", met=None,
                   command=cmd, notes="emotional-support seekers (some disclose suicidal thoughts): an upper bound "
                                      "on false alarms; ESConv is not used for training or thresholds"),
        ]
    if save:
        save()
    layer.encode, layer.single_thread = encode, single
    layer._cache.clear()  # every latency turn is encoded afresh, as a new chat turn is
    sample = turns[:: max(1, len(turns) // args.latency_turns)][: args.latency_turns]
    load0 = os.getloadavg()[0]
    rw, rc, _ = latency(screeners["rules"], sample)
    lw, lc, lo = latency(screeners["rules + learned"], sample)
    load = f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after"
    results.append(Result(
        benchmark="latency per turn, rules + learned layer (AnnoMI client turns, one at a time)",
        figure=f"+{(lc - rc) * 1000:.1f} ms CPU (+{(lw - rw) * 1000:.1f} ms wall) per turn",
        baseline=f"rules alone {rc * 1e6:.0f} us CPU per turn", ratio=round(lc / max(rc, 1e-9), 1),
        target="< 20 ms added", met=(lc - rc) < 0.020, command=cmd,
        notes=f"{len(sample)} turns, median {statistics.median(len(t) for t in sample)} characters; torch's default "
              f"threads (the learned layer scores a chat turn on one; CPU of other threads {lo * 1000:.2f} ms per "
              f"turn); the machine's 2 cores are shared ({load}), so wall time runs above CPU time",
        extra={"rules_wall_s": rw, "rules_cpu_s": rc, "learned_wall_s": lw, "learned_cpu_s": lc,
               "learned_other_threads_cpu_s": lo}))
    for layer, why in skipped.items():
        results.append(Result(benchmark=f"optional layer: {layer}", figure="not run", baseline="-", ratio=None,
                              target="-", met=None, command=cmd, notes=why))
    record("safety_screen", results)


if __name__ == "__main__":
    main()
