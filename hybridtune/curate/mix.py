"""Stage `mix`: the `real` and `hybrid` training sets, held-out test splits, a contamination
check against the evaluation scenarios, and the exports (OpenAI JSONL, Parquet, card).

Input : runs/<name>/curate/{selected,review,rejected,decisions}.jsonl (reviewer decisions win,
        edits applied), runs/<name>/eval_scenarios/scenarios.jsonl (Scenario).
Output: runs/<name>/mix/
          real/{train,valid}.jsonl, hybrid/{train,valid}.jsonl   Session records (what train reads)
          test_real.jsonl, test_synthetic.jsonl                  Session; no variant trains on them
          contamination.jsonl                                    sessions dropped as near-duplicates
          <variant>/openai_{train,valid}.jsonl, <variant>/parquet/{train,validation}.parquet,
          <variant>/README.md (dataset card); report.json, report.md

Deterministic for a seed: pools are sorted by id before a seeded shuffle.

    hybridtune mix -c configs/demo.yaml       # or: hybridtune run configs/demo.yaml --stage mix
"""
from __future__ import annotations

import random
import re
from collections import defaultdict

from ..context import Context
from ..errors import UserError
from ..records import Scenario, Session
from ..store import StageDir
from .config import MixConfig
from .decisions import effective, load_candidates
from .export import export_all
from .select import stratum

VARIANTS = ("real", "hybrid")


# -- contamination ------------------------------------------------------------------------
def shingles(text: str, k: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < k:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def scenario_text(sc: Scenario) -> str:
    return f"{sc.summary}\n{sc.scenario}"


def contamination(sessions: list[Session], scenarios: list[Scenario], mc: MixConfig) -> dict[str, dict]:
    """Near-duplicates by the configured method(s); a session caught by either is reported once."""
    hits: dict[str, dict] = {}
    if mc.contamination in ("embedding", "both") and sessions and scenarios:
        hits.update(embedding_hits(sessions, scenarios, mc.embedding_threshold))
    if mc.contamination in ("shingles", "both"):
        hits.update(shingle_hits(sessions, scenarios, mc))
    return hits


def embedding_hits(sessions: list[Session], scenarios: list[Scenario], threshold: float) -> dict[str, dict]:
    """Cosine of each session's client turns to the nearest scenario (catches paraphrase)."""
    import numpy as np

    from ..embed import embed

    X = embed(["\n".join(s.turns("user")) for s in sessions])
    Y = embed([scenario_text(sc) for sc in scenarios])
    sims = X @ Y.T
    best = sims.argmax(axis=1)
    out = {}
    for i, s in enumerate(sessions):
        cos = float(sims[i, best[i]])
        if cos >= threshold:
            out[s.id] = {"id": s.id, "source": s.source, "scenario_id": scenarios[int(best[i])].id,
                         "method": "embedding", "cosine": round(cos, 3)}
    assert np.isfinite(sims).all(), "embedding similarities must be finite"
    return out


def shingle_hits(sessions: list[Session], scenarios: list[Scenario], mc: MixConfig) -> dict[str, dict]:
    """Sessions whose text contains (or overlaps) an evaluation scenario above the threshold.

    Similarity is exact word-shingle containment of the scenario in the session (a short
    scenario inside a long dialogue has a low Jaccard index, so containment is the measure
    that catches it), with Jaccard reported beside it. Exact sets, not MinHash estimates:
    500 sessions x 50 scenarios is a few thousand set intersections.
    """
    scen = [(sc.id, shingles(scenario_text(sc), mc.shingle_size)) for sc in scenarios]
    hits: dict[str, dict] = {}
    for s in sessions:
        sh = shingles(s.text(), mc.shingle_size)
        best = None
        for sid, e in scen:
            if not e or not sh:
                continue
            inter = len(sh & e)
            cont, jac = inter / len(e), inter / len(sh | e)
            if max(cont, jac) >= mc.contamination_threshold and (best is None or cont > best["containment"]):
                best = {"id": s.id, "source": s.source, "scenario_id": sid, "method": "shingles",
                        "containment": round(cont, 3), "jaccard": round(jac, 3)}
        if best:
            hits[s.id] = best
    return hits


# -- sampling -----------------------------------------------------------------------------
def stratified_sample(pool: list[Session], n: int, key: str, rng: random.Random) -> list[Session]:
    """n sessions with strata in proportion to the pool (largest remainder), deterministic for rng."""
    groups: dict[str, list[Session]] = defaultdict(list)
    for s in sorted(pool, key=lambda x: x.id):
        groups[stratum(s, key)].append(s)
    n = min(n, len(pool))
    quota = {g: n * len(m) / len(pool) for g, m in groups.items()} if pool else {}
    alloc = {g: int(q) for g, q in quota.items()}
    for g in sorted(quota, key=lambda g: (-(quota[g] - alloc[g]), g))[: n - sum(alloc.values())]:
        alloc[g] += 1
    out: list[Session] = []
    for g in sorted(groups):
        out += rng.sample(groups[g], alloc[g])
    return sorted(out, key=lambda x: x.id)


def split_off(pool: list[Session], frac: float, minimum: int,
              rng: random.Random) -> tuple[list[Session], list[Session]]:
    """(held-out, rest): round(frac*n) sessions, at least `minimum` when the pool has more than one."""
    pool = sorted(pool, key=lambda x: x.id)
    k = round(len(pool) * frac) if frac > 0 else 0
    if frac > 0 and len(pool) > 1:
        k = max(k, minimum)
    k = min(k, len(pool) - 1) if len(pool) > 1 else 0
    picked = set(x.id for x in rng.sample(pool, k))
    return [s for s in pool if s.id in picked], [s for s in pool if s.id not in picked]


def _need(have: int, want: int, what: str, mc: MixConfig, why: str) -> int:
    if have >= want:
        return want
    if mc.allow_smaller:
        return have
    raise UserError(
        f"mix: the {what} needs {want} sessions but only {have} are eligible (stratum {what.split()[-1]}; {why}); "
        "lower mix.size / mix.real_ratio, accept more sessions in review, generate more, or set mix.allow_smaller=true"
    )


def build(real: list[Session], synth: list[Session], mc: MixConfig, seed: int,
          notes: str = "") -> dict[str, list[Session]]:
    """The splits, as {file name under mix/: sessions}. Pure: same inputs and seed, same output."""
    rng = random.Random(seed)
    test_real, real_avail = split_off(real, mc.test_fraction, mc.min_test, rng)
    test_syn, syn_avail = split_off(synth, mc.test_fraction, mc.min_test, rng)
    n_real = round(mc.size * mc.real_ratio)
    n_syn = mc.size - n_real
    why = f"{len(test_real)} real and {len(test_syn)} synthetic held out for test{notes}"
    n_real = _need(len(real_avail), n_real, "hybrid set's source=real", mc, why)
    n_syn = _need(len(syn_avail), n_syn, "hybrid set's source=synthetic", mc, why)
    real_pick = sorted(rng.sample(sorted(real_avail, key=lambda x: x.id), n_real), key=lambda x: x.id)
    syn_pick = stratified_sample(syn_avail, n_syn, mc.stratify_by, rng)
    if mc.real_size is None:
        real_only = real_pick
    else:
        want = _need(len(real_avail), mc.real_size, "real-only set's source=real", mc, why)
        real_only = sorted(rng.sample(sorted(real_avail, key=lambda x: x.id), want), key=lambda x: x.id)
    # the same real sessions get the same train/valid split in both variants
    real_valid_ids = {s.id for s in split_off(real_only if mc.real_size else real_pick, mc.valid_fraction, 1, rng)[0]}
    if mc.real_size:
        real_valid_ids |= {s.id for s in split_off(real_pick, mc.valid_fraction, 1, rng)[0]}
    syn_valid_ids = {s.id for s in split_off(syn_pick, mc.valid_fraction, 1, rng)[0]}
    valid_ids = real_valid_ids | syn_valid_ids if mc.valid_fraction > 0 else set()
    hybrid = real_pick + syn_pick
    out = {"test_real.jsonl": test_real, "test_synthetic.jsonl": test_syn}
    for variant, members in (("real", real_only), ("hybrid", hybrid)):
        out[f"{variant}/train.jsonl"] = [s for s in members if s.id not in valid_ids]
        out[f"{variant}/valid.jsonl"] = [s for s in members if s.id in valid_ids]
    return out


def load_eligible(ctx: Context) -> tuple[list[Session], list[Session], dict]:
    cur = ctx.store.stage("curate")
    if not load_candidates(cur):
        raise UserError(f"{cur.file('selected.jsonl')}: no curated sessions; "
                        "run `hybridtune judge` (stage curate) first")
    mc = ctx.cfg.mix
    sessions = effective(cur, mc.include_pending)
    info = {"eligible": len(sessions)}
    return [s for s in sessions if s.source == "real"], [s for s in sessions if s.source == "synthetic"], info


def run(ctx: Context, st: StageDir) -> dict:
    mc = ctx.cfg.mix
    real, synth, info = load_eligible(ctx)
    scen_file = ctx.store.path("eval_scenarios", "scenarios.jsonl")
    scenarios = list(ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario)) if scen_file.exists() else []
    hits = contamination(real + synth, scenarios, mc) if mc.contamination != "off" else {}
    if not scenarios and mc.contamination != "off":
        ctx.log(f"[yellow]mix: {scen_file} missing: contamination not checked "
                "(run stage eval_scenarios first)[/yellow]")
    st.write_records("contamination.jsonl", list(hits.values()))
    real = [s for s in real if s.id not in hits]
    synth = [s for s in synth if s.id not in hits]
    seed = ctx.cfg.seed if mc.seed is None else mc.seed
    splits = build(real, synth, mc, seed, notes=f", {len(hits)} dropped as contaminated")
    counts = {name: st.write_records(name, recs) for name, recs in splits.items()}
    summary = {**info, "contaminated": len(hits), "scenarios_checked": len(scenarios), "seed": seed,
               "files": counts}
    summary["exports"] = export_all(ctx, st, summary)
    st.write_json("report.json", summary)
    st.write_text("report.md", report_md(summary, list(hits.values()), mc))
    return summary


def report_md(summary: dict, hits: list[dict], mc: MixConfig) -> str:
    lines = ["# Mix report", "", f"Eligible curated sessions: {summary['eligible']}; seed {summary['seed']}.", "",
             "| file | sessions |", "|---|---|", *[f"| {k} | {n} |" for k, n in summary["files"].items()], "",
             f"## Contamination ({mc.contamination}) against {summary['scenarios_checked']} evaluation scenarios", ""]
    if not summary["scenarios_checked"] and mc.contamination != "off":
        lines.append("Not checked: no evaluation scenarios (run stage eval_scenarios before mix).")
    for h in hits:
        sims = ", ".join(f"{k} {v}" for k, v in h.items() if k in ("containment", "jaccard", "cosine"))
        lines.append(f"- dropped {h['id']} ({h['source']}): near-duplicate of scenario {h['scenario_id']} ({sims})")
    if summary["scenarios_checked"] and not hits:
        lines.append("No training session is a near-duplicate of an evaluation scenario.")
    return "\n".join(lines) + "\n"
