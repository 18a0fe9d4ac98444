"""Stage `mix`: one training set per trained variant declared under `variants:` (each a recipe:
sources, real share, size, units; see hybridtune/variants.py), held-out test splits, a
contamination check against the evaluation scenarios, and the exports (OpenAI JSONL, Parquet, card).

Input : runs/<name>/curate/{selected,review,rejected,decisions}.jsonl (reviewer decisions win,
        edits applied), runs/<name>/eval_scenarios/scenarios.jsonl (Scenario).
Output: runs/<name>/mix/
          <variant>/{train,valid}.jsonl                           Session records (what train reads);
                                                                 a QA unit is a Session with meta.unit=qa
          test_real.jsonl, test_synthetic.jsonl                  Session; no variant trains on them
          contamination.jsonl                                    sessions dropped as near-duplicates
          leakage.json                                           training vs test leakage check (a leak fails the run)
          <variant>/openai_{train,valid}.jsonl, <variant>/parquet/{train,validation}.parquet,
          <variant>/README.md (dataset card); summary.json, report.md

Held-out real sessions are the ones the `split` stage chose over every ingested real session
and wrote to runs/<name>/split/split.json (hybridtune/split.py; the synth stage never used them
as exemplars; a missing or stale split is refused); `leakage.check` then verifies that no
training file shares an id, lineage or (near-)identical text with a test split.
Deterministic for a seed: pools are sorted by id before a seeded shuffle; every variant
draws from the same stratified order of each source, so smaller shares nest in larger ones.
With `train.seeds`, a further seed's models (variant~s<seed>) draw from orders shuffled with
that seed (nesting and `design: added` hold within a seed); the held-out splits never change.
QA units of real sessions come from real/samples.jsonl (none from a held-out session).

    hybridtune mix -c configs/demo.yaml       # or: hybridtune run configs/demo.yaml --stage mix
"""
from __future__ import annotations

import random
from collections import defaultdict

from ..contamination import ContaminationConfig, session_hits
from ..context import Context
from ..errors import UserError
from ..real.config import SegmentConfig
from ..real.segment import Sample, segment
from ..meta import RealMeta
from ..records import Scenario, Session, stable_id
from ..split import SplitConfig, mix_seed, split_config, split_off
from ..split import ingested as real_stage_sessions, make as make_split, read as read_split
from ..store import StageDir
from ..synth.sessions import align_opening
from ..variants import Variant
from .config import MixConfig
from .decisions import effective, load_candidates
from .export import export_all
from .holdout import KNOWN_GROUP_KEYS, group_overlap, scenario_of
from .leakage import check as leakage_check
from .leakage import describe as describe_leak
from .select import stratum



# -- sampling -----------------------------------------------------------------------------
def stratified_order(pool: list[Session], key: str, rng: random.Random) -> list[Session]:
    """The pool in an order whose every prefix keeps the strata in proportion (each step takes
    from the stratum furthest below its share), shuffled within strata. Prefixes nest, so
    variants of different sizes or shares draw the same sessions first."""
    groups: dict[str, list[Session]] = defaultdict(list)
    for s in sorted(pool, key=lambda x: x.id):
        groups[stratum(s, key)].append(s)
    for g in sorted(groups):
        rng.shuffle(groups[g])
    taken = dict.fromkeys(groups, 0)
    out: list[Session] = []
    for i in range(len(pool)):
        open_ = [g for g in sorted(groups) if taken[g] < len(groups[g])]
        g = max(open_, key=lambda g: (i + 1) * len(groups[g]) / len(pool) - taken[g])
        out.append(groups[g][taken[g]])
        taken[g] += 1
    return out


def stratified_sample(pool: list[Session], n: int, key: str, rng: random.Random) -> list[Session]:
    """n sessions with strata in proportion to the pool, deterministic for rng."""
    return sorted(stratified_order(pool, key, rng)[:n], key=lambda x: x.id)


def _need(have: int, want: int, what: str, mc: MixConfig, why: str) -> int:
    if have >= want:
        return want
    if mc.allow_smaller:
        return have
    raise UserError(
        f"mix: the {what} needs {want} units but only {have} are eligible ({why}); lower the variant's size or "
        "real_share (or mix.size), accept more sessions in review, generate more, or set mix.allow_smaller=true"
    )


# -- training units ------------------------------------------------------------------------
def qa_units(s: Session, samples: list[Sample] | None = None, seg: SegmentConfig | None = None) -> list[Session]:
    """A session's question-answer units: each counselor turn with the turns before it, as its own
    record (meta: unit, session_id, turns, and the answer's technique / the client turn's emotion and
    distortion for balancing). `samples`: the real stage's samples.jsonl entries for this session;
    None cuts them here with the same segmenter."""
    if samples is None:
        seg = (seg or SegmentConfig()).model_copy(update={"sessions": False, "qa": True, "system_prompt": False})
        samples = list(segment(s, seg))
    off = 1 if s.messages and s.messages[0].role == "system" else 0
    ann = {a.index: a for a in s.annotations}
    keep = {k: v for k, v in RealMeta.of(s).dump().items()
            if k in ("topic", "theme", "problem_type", "format", "file", "dataset", "licence")}
    out = []
    for x in samples:
        if x.kind != "qa":
            continue
        a, b = x.turns
        ans, cli = ann.get(b - 1 + off), ann.get(b - 2 + off)
        out.append(Session(id=x.id, source=s.source, messages=[m for m in x.messages if m.role != "system"], meta={
            **keep, "unit": "qa", "session_id": s.id, "turns": [a, b],
            "technique": ans.techniques[0] if ans and ans.techniques else stratum(s, "technique"),
            "emotion": cli.emotion if cli and cli.emotion else stratum(s, "emotion"),
            "distortion": cli.distortions[0] if cli and cli.distortions else stratum(s, "distortion")}))
    return out


def unit_pool(sessions: list[Session], units: str, samples: dict[str, list[Sample]] | None = None,
              seg: SegmentConfig | None = None, opens: str = "client") -> list[Session]:
    """The training units a variant can draw from these (non-held-out) sessions, each opening with
    the configured speaker (`opens`, as the simulated evaluation does); a unit left without a
    counselor turn is quarantined by the export's validation, as any other unusable one."""
    out = list(sessions) if units in ("sessions", "both") else []
    if units in ("qa", "both"):
        for s in sessions:
            out += qa_units(s, (samples or {}).get(s.id), seg)
    return [u.model_copy(update={"messages": align_opening(u.messages, opens)}) for u in out]


def valid_ids(members: list[Session], frac: float, seed: int) -> set[str]:
    """round(frac*n) members (at least 1 of 2+), the lowest by a fixed per-id rank: the same members
    give the same validation units in every variant."""
    if frac <= 0 or len(members) < 2:
        return set()
    k = min(max(round(len(members) * frac), 1), len(members) - 1)
    return {s.id for s in sorted(members, key=lambda x: stable_id("valid", seed, x.id))[:k]}


def build(real: list[Session], synth: list[Session], variants: list[Variant], mc: MixConfig, seed: int,
          notes: str = "", samples: dict[str, list[Sample]] | None = None,
          seg: SegmentConfig | None = None, opens: str = "client",
          heldout: set[str] | None = None) -> dict[str, list[Session]]:
    """The splits, as {file name under mix/: sessions}. Pure: same inputs and seed, same output.

    Held-out test sessions are split off first: the real ones are `heldout` (the ids of the
    `split` stage's artefact, chosen over every ingested real session before any stage saw them;
    default: `split.make` over `real`), the synthetic ones by whole scenario. Each
    trained variant then takes its units per source from a fixed stratified order of what is
    left (same seed for every variant)."""
    rng = random.Random(seed)
    held = set(make_split(real, SplitConfig.of(mc, seed)).heldout) if heldout is None else heldout
    test_real = [s for s in sorted(real, key=lambda x: x.id) if s.id in held]
    real_avail = [s for s in sorted(real, key=lambda x: x.id) if s.id not in held]
    test_syn, syn_avail = split_off(synth, mc.test_fraction_synth, mc.min_test, rng, group=scenario_of)
    avail = {"real": real_avail, "synthetic": syn_avail}
    why = f"{len(test_real)} real and {len(test_syn)} synthetic sessions held out for test{notes}"
    out = {"test_real.jsonl": test_real, "test_synthetic.jsonl": test_syn}
    orders: dict[tuple, list[Session]] = {}
    for v in variants:
        if not v.trained:
            continue
        members: list[Session] = []
        valid: set[str] = set()
        draw = seed if v.replicate_of is None else v.seed  # a further training seed draws its own subsets
        for source, want in v.counts().items():
            key = (source, v.units, v.balance_by, draw)
            if key not in orders:
                pool = unit_pool(avail[source], v.units, samples if source == "real" else None, seg, opens)
                orders[key] = stratified_order(pool, v.balance_by, random.Random(f"{draw}:{source}:{v.units}:{v.balance_by}"))
            n = _need(len(orders[key]), want, f"variant {v.name}'s source={source} ({v.units})", mc, why) if want else 0
            members += orders[key][:n]
            valid |= valid_ids(orders[key][:n], mc.valid_fraction, draw)
        members.sort(key=lambda x: x.id)
        out[f"{v.name}/train.jsonl"] = [s for s in members if s.id not in valid]
        out[f"{v.name}/valid.jsonl"] = [s for s in members if s.id in valid]
    return out


def composition(splits: dict[str, list[Session]], variants: list[Variant]) -> dict[str, dict]:
    """Per trained variant: its recipe and what it got (units per source, the realised real share)."""
    out = {}
    for v in variants:
        if not v.trained:
            continue
        members = splits[f"{v.name}/train.jsonl"] + splits[f"{v.name}/valid.jsonl"]
        n_real = sum(s.source == "real" for s in members)
        out[v.name] = {"recipe": v.recipe(), "sweep": v.sweep, "units": len(members), "real": n_real,
                       "synthetic": len(members) - n_real, "real_share": round(n_real / len(members), 4) if members else None}
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


def load_samples(ctx: Context) -> dict[str, list[Sample]]:
    """The real stage's samples.jsonl, by session id (QA units of real sessions come from it)."""
    out: dict[str, list[Sample]] = defaultdict(list)
    for x in ctx.store.stage("real").read("samples.jsonl", Sample):
        out[x.session_id].append(x)
    return out


def run(ctx: Context, st: StageDir) -> dict:
    mc = ctx.cfg.mix
    real, synth, info = load_eligible(ctx)
    scen_file = ctx.store.path("eval_scenarios", "scenarios.jsonl")
    scenarios = list(ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario)) if scen_file.exists() else []
    cc = ctx.cfg.contamination
    hits = session_hits(real + synth, scenarios, cc)
    if not scenarios and cc.method != "off":
        ctx.log(f"[yellow]mix: {scen_file} missing: contamination not checked "
                "(run stage eval_scenarios first)[/yellow]")
    st.write_records("contamination.jsonl", list(hits.values()))
    real = [s for s in real if s.id not in hits]
    synth = [s for s in synth if s.id not in hits]
    seed = mix_seed(ctx.cfg)
    variants = ctx.cfg.variant_list()
    samples = load_samples(ctx) if any(v.units != "sessions" for v in variants) else None
    ingested, held = heldout_real(ctx, real)
    splits = build(real, synth, variants, mc, seed, notes=f", {len(hits)} dropped as contaminated",
                   samples=samples, seg=ctx.cfg.real.segment, opens=ctx.cfg.opens, heldout=held)
    leak = leakage_check({k: v for k, v in splits.items() if not k.startswith("test_")},
                         {k: v for k, v in splits.items() if k.startswith("test_")},
                         mc.leakage_threshold, mc.leakage_shingle_words)
    leak.update(grouped_leakage(splits["test_real.jsonl"], [s for s in ingested if s.id not in held], mc))
    leak["leaks"] += leak.pop("group_leaks")
    if leak["group_overlap"] and not mc.group_by:
        ctx.log(f"[yellow]mix: {len(leak['group_overlap'])} held-out real sessions share a "
                f"{'/'.join(leak['group_keys'])} with a training-side session; set mix.group_by: "
                f"{list(leak['group_keys'])} to hold out whole groups[/yellow]")
    st.write_json("leakage.json", leak)
    if leak["leaks"]:
        lines = [describe_leak(x) for x in leak["leaks"]]
        raise UserError(f"{st.file('leakage.json')}: {len(lines)} leak(s) between training sets and held-out test "
                        f"splits, e.g. {'; '.join(lines[:3])}; the held-out results would be biased. Rerun synth "
                        "(exemplars now come from the training side only) or raise mix.leakage_threshold if the "
                        "near-duplicates are legitimate")
    counts = {name: st.write_records(name, recs) for name, recs in splits.items()}
    summary = {**info, "contaminated": len(hits), "scenarios_checked": len(scenarios), "seed": seed,
               "files": counts, "variants": composition(splits, variants), "leaks": 0,
               "leakage_checked": leak["train_sessions"] * leak["test_sessions"],
               "group_by": list(mc.group_by), "group_keys": leak["group_keys"],
               "group_overlap": len(leak["group_overlap"])}
    summary["exports"] = export_all(ctx, st, summary)
    st.write_summary(summary)
    st.write_text("report.md", report_md(summary, list(hits.values()), cc))
    return summary


def heldout_real(ctx: Context, curated_real: list[Session]) -> tuple[list[Session], set[str]]:
    """(the ingested real sessions, the held-out ids of the split artefact). A run without
    real-stage sessions has no split: its curated real sessions are split the same way here."""
    ingested = real_stage_sessions(ctx.store)
    sp = read_split(ctx.store, ctx.cfg, ingested)
    if sp is None:
        ingested, sp = curated_real, make_split(curated_real, split_config(ctx.cfg))
    return ingested, set(sp.heldout)


def grouped_leakage(test_real: list[Session], train_side: list[Session], mc: MixConfig) -> dict:
    """Group overlap between held-out and training-side real sessions (the text checks cannot see
    two transcripts of one video or series): on `mix.group_by`, where every overlap is a leak,
    or else on the keys known sources record (`holdout.KNOWN_GROUP_KEYS`), reported only."""
    keys = list(mc.group_by) or [k for k in KNOWN_GROUP_KEYS if any(k in s.meta for s in test_real)]
    over = group_overlap(test_real, train_side, keys) if keys else []
    leaks = [{"kind": "same group", "train_file": "real (training side)", "train_id": o["train_ids"][0],
              "test_file": "test_real.jsonl", "test_id": o["test_id"]} for o in over] if mc.group_by else []
    return {"group_keys": keys, "grouped": bool(mc.group_by), "group_overlap": over, "group_leaks": leaks}


def group_line(summary: dict) -> str:
    """The grouped split in one sentence (mix report)."""
    keys, n = "/".join(summary.get("group_keys") or []), summary.get("group_overlap", 0)
    if summary.get("group_by"):
        return f"Held out by whole groups ({keys}): no held-out real session shares a group with the training side."
    if not keys:
        return "Held out by session (mix.group_by not set; the sessions carry no known group key)."
    return (f"Held out by session: {n} held-out real sessions share a {keys} with a training-side session "
            f"(set mix.group_by: [{', '.join(summary['group_keys'])}] to hold out whole groups).")


def report_md(summary: dict, hits: list[dict], cc: ContaminationConfig) -> str:
    lines = ["# Mix report", "", f"Eligible curated sessions: {summary['eligible']}; seed {summary['seed']}.", "",
             "| file | units |", "|---|---|", *[f"| {k} | {n} |" for k, n in summary["files"].items()], "",
             "| variant | units | real | synthetic | real share | recipe |", "|---|---|---|---|---|---|",
             *[f"| {k} | {c['units']} | {c['real']} | {c['synthetic']} | {c['real_share']} | {c['recipe']} |"
               for k, c in summary.get("variants", {}).items()], "",
             f"## Contamination ({cc.method}) against {summary['scenarios_checked']} evaluation scenarios", ""]
    if not summary["scenarios_checked"] and cc.method != "off":
        lines.append("Not checked: no evaluation scenarios (run stage eval_scenarios before mix).")
    for h in hits:
        sims = ", ".join(f"{k} {v}" for k, v in h.items() if k in ("containment", "jaccard", "cosine"))
        lines.append(f"- dropped {h['id']} ({h['source']}): near-duplicate of scenario {h['scenario_id']} ({sims})")
    if summary["scenarios_checked"] and not hits:
        lines.append("No training session is a near-duplicate of an evaluation scenario.")
    lines += ["", "## Leakage (training sets vs held-out test splits)", "",
              "Passed: no shared id, no held-out real session used as a few-shot exemplar, no scenario on both "
              f"sides, no exact or near-duplicate dialogue ({summary['leakage_checked']} pairs checked).", "",
              group_line(summary)]
    return "\n".join(lines) + "\n"
