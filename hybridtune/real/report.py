"""summary.json and report.md of the real stage: counts in/out per step, quarantine, filter reasons,
PII by type, duplicate clusters, speaker attribution, safety flags, annotation distributions.

Input: the stage's counters. Output: two files in the stage dir. Called by stage.ingest.
"""
from __future__ import annotations

from typing import Any

from ..store import StageDir


def write_reports(st: StageDir, summary: dict, stats: Any, dd: Any, llm: dict, out: dict) -> None:
    att = stats.attribution
    report = {
        **summary,
        "formats": dict(stats.formats),
        "filters": dict(stats.filters),
        "pii": dict(stats.pii.most_common()),
        "duplicates": {**dd.counts(), "clusters_list": dd.clusters()[:200]},
        "attribution": {"sessions": len(att), "mean_confidence": round(sum(att) / len(att), 3) if att else None,
                        "below_0.7": sum(c < 0.7 for c in att)},
        "safety": dict(stats.safety),
        "llm": llm,
    }
    st.write_summary(report)
    lines = [
        "# Real data ingestion report", "",
        "| step | count |", "|---|---|",
        f"| files in | {summary['files_in']} |",
        f"| files quarantined | {summary['files_quarantined']} |",
        f"| sessions parsed | {summary['sessions_in']} |",
        f"| after quality filters | {summary['after_filters']} |",
        f"| after deduplication | {summary['after_dedup']} |",
        f"| dropped by LLM quality score | {out['dropped_llm_quality']} |",
        f"| sessions out | {out['sessions_out']} |",
        f"| samples out | {out['samples_out']} ({', '.join(f'{k}: {v}' for k, v in out['samples'].items())}) |",
        "", "## Dropped by filters", "",
        *([f"- {k}: {v}" for k, v in stats.filters.most_common()] or ["- none"]),
        "", "## PII replaced (by type)", "",
        *([f"- {k}: {v}" for k, v in stats.pii.most_common()] or ["- none found"]),
        "", "## Duplicates", "",
        f"- sessions: {dd.counts()['exact']} exact, {dd.counts()['near']} near-duplicates in {dd.counts()['clusters']} clusters",
        f"- samples: {out['sample_duplicates']['exact']} exact, {out['sample_duplicates']['near']} near",
        *[f"  - kept `{c['kept']}`, dropped {', '.join(f'`{d}`' for d in c['dropped'][:5])}" for c in dd.clusters()[:20]],
        "", "## Speaker attribution (captions)", "",
        f"- sessions attributed: {len(att)}; mean confidence {report['attribution']['mean_confidence']}",
        "", "## Safety screen (rules only)", "",
        *([f"- {k}: {v}" for k, v in stats.safety.items()] or ["- not run (hybridtune.safety.rules unavailable)"]),
        "", "## Annotation distributions", "",
        "Annotations come from the `annotator` role. With the embedded 135M model they are close to noise;",
        "use a strong model for annotations that feed few-shot selection or coverage reports.", "",
    ]
    for k, v in out["distributions"].items():
        lines.append(f"- {k}: " + (", ".join(f"{a} {n}" for a, n in list(v.items())[:12]) or "none"))
    st.write_text("report.md", "\n".join(lines) + "\n")
