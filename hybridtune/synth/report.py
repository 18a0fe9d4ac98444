"""synth_report.md / summary.json: diversity, correctness, naturalness, technique coverage, lengths.

Input: personas/summary.json, scenarios/summary.json (written by those stages) and the synthetic
sessions. Output: runs/<name>/synth/synth_report.md and summary.json. Called at the end
of the `synth` stage; numbers from the embedded 135M model's judge are noise (said in the report).
"""
from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from ..context import Context
from ..meta import SynthMeta
from ..records import Session
from ..store import StageDir
from ..tables import md_table


def technique_coverage(sessions: list[Session], ids: list[str], key: str) -> dict[str, Any]:
    """Counts of technique ids in SynthMeta.<key> over the sessions, each technique's share vs its even share."""
    labels = [getattr(SynthMeta.of(s), key) for s in sessions]
    c = Counter(t for ts in labels for t in (ts or []))
    total = sum(c.values())
    quota = total / len(ids) if ids and total else 0.0
    return {
        "counts": {i: c.get(i, 0) for i in ids},
        "total": total,
        "missing": [i for i in ids if c.get(i, 0) == 0],
        "max_over_quota": round(max(c.values()) / quota, 3) if quota and c else None,
        "sessions_with_labels": sum(1 for ts in labels if ts is not None),
    }


def session_stats(ctx: Context, sessions: list[Session], st: StageDir) -> dict[str, Any]:
    ids = [t.id for t in ctx.domain.techniques]
    metas = [SynthMeta.of(s) for s in sessions]
    lengths = [m.exchanges for m in metas]
    words = [sum(len(m.content.split()) for m in s.messages if m.role != "system") for s in sessions]
    planned = technique_coverage(sessions, ids, "planned_techniques")
    realised = technique_coverage(sessions, ids, "realised_techniques")
    hit = [len(set(m.planned_techniques) & set(m.realised_techniques)) / len(m.planned_techniques)
           for m in metas if m.realised_techniques is not None and m.planned_techniques]
    return {
        "requested": ctx.cfg.synth.sessions,
        "sessions": len(sessions),
        "failed_items": len(st.still_failed("generated.jsonl")),
        "invalid_attempts": len(list(st.read_dicts("failures.jsonl"))),
        "mode": ctx.cfg.synth.mode,
        "exchanges": {"min": min(lengths, default=0), "median": statistics.median(lengths) if lengths else 0,
                      "max": max(lengths, default=0), "histogram": dict(sorted(Counter(lengths).items()))},
        "words_per_session_median": statistics.median(words) if words else 0,
        "ended_by": dict(Counter(m.ended_by for m in metas)),
        "with_fewshot": sum(1 for m in metas if m.fewshot_ids),
        "planned_coverage": planned,
        "realised_coverage": realised,
        "planned_realised_rate": round(sum(hit) / len(hit), 3) if hit else None,
    }


def render_md(ctx: Context, rep: dict[str, Any]) -> str:
    p, sc, se = rep["personas"], rep["scenarios"], rep["sessions"]
    emb = ctx.cfg.endpoints.get(ctx.cfg.roles["judge"].endpoint)
    note = ("The judge is the embedded SmolLM2-135M model: its correctness, naturalness and distortion "
            "checks are noise, useful only to show the machinery runs. Use a strong judge for real numbers."
            if emb and emb.backend == "llamacpp" else "Judge-based numbers come from the configured judge role.")
    lines = [f"# Synthetic data report: run `{ctx.cfg.name}`, domain `{ctx.domain.name}`", "", f"> {note}", ""]
    if p:
        lines += ["## Personas", "",
                  f"{p['kept']} kept of {p['requested']} requested; {p['dropped']} dropped after regenerations, "
                  f"{p['regenerated']} needed a regeneration, {p['invalid_attempts']} invalid structured replies (replaced).", "",
                  f"- Embedding diversity (all-MiniLM-L6-v2): Vendi score **{p['vendi_score']}** "
                  f"(of at most {p['kept']}), mean pairwise cosine distance **{p['mean_pairwise_cosine_distance']}**",
                  f"- Correctness (narrative matches attributes): {p['correct_rate']}",
                  f"- Naturalness (judge, 1-10): {p['naturalness_mean']}", "",
                  md_table(("attribute", "values covered", "entropy (1 = even)"),
                           [(a, f"{v['covered']}/{v['values']}", v["entropy"]) for a, v in p["attribute_coverage"].items()]),
                  ""]
    if sc:
        lines += ["## Scenarios", "",
                  f"{sc['kept']} kept of {sc['requested']}; {sc['near_duplicates_rejected']} near-duplicates rejected and "
                  f"regenerated; {sc['invalid_attempts']} invalid structured replies (replaced).", "",
                  f"- Distortions confirmed present by the judge: {sc['distortions_confirmed']}/{sc['distortions_planned']} "
                  f"(rate {sc['distortion_confirm_rate']}, checks {'on' if sc['checked'] else 'off'})",
                  "- Distortion coverage: " + ", ".join(f"{k} {v}" for k, v in sc["distortion_coverage"].items()), ""]
    pc, rc = se["planned_coverage"], se["realised_coverage"]
    lines += ["## Sessions", "",
              f"{se['sessions']} of {se['requested']} sessions ({se['mode']}); {se['failed_items']} failed, "
              f"{se['invalid_attempts']} invalid attempts; {se['with_fewshot']} used real few-shot exemplars.", "",
              f"- Length (client+counselor exchanges): min {se['exchanges']['min']}, median {se['exchanges']['median']}, "
              f"max {se['exchanges']['max']}; histogram {se['exchanges']['histogram']}",
              f"- Median words per session: {se['words_per_session_median']}",
              f"- Ended by: {se['ended_by']} (closing = detected goodbye; cap = cut at target + 1)",
              f"- Planned techniques realised (annotator): {se['planned_realised_rate']}", "",
              "### Technique coverage", "",
              f"Planned: missing {pc['missing'] or 'none'}, max share / even share = {pc['max_over_quota']}. "
              f"Realised: missing {rc['missing'] or 'none'}, max / even = {rc['max_over_quota']}.", "",
              md_table(("technique", "planned", "realised"), [(t, pc["counts"][t], rc["counts"][t]) for t in pc["counts"]]), ""]
    return "\n".join(lines)


def write_report(ctx: Context, st: StageDir, sessions: list[Session]) -> dict[str, Any]:
    """Write synth_report.md and summary.json; returns the flat summary for the stage marker."""
    rep = {
        "personas": ctx.store.stage("personas").read_summary({}) or {},
        "scenarios": ctx.store.stage("scenarios").read_summary({}) or {},
        "sessions": session_stats(ctx, sessions, st),
    }
    st.write_summary(rep)
    st.write_text("synth_report.md", render_md(ctx, rep))
    se = rep["sessions"]
    return {"sessions": se["sessions"], "failed": se["failed_items"], "median_exchanges": se["exchanges"]["median"],
            "techniques_missing": len(se["planned_coverage"]["missing"])}
