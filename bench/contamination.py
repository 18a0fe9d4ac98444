"""The one contamination check (hybridtune/contamination.py) against the pairwise check it replaced.

Training texts: the ESConv train split as sessions (`data_file("esconv", "train.json")`, read by
the project's own ESConv reader); evaluation scenarios: CACTUS evaluation intake forms
(`data_file("cactus", "evaluation.json")`). `--plant` scenarios are copied into as many
sessions, so both methods must find exactly those. Baseline, in the same run: the check `mix`
used before (per session, a set intersection with every scenario's shingles). Measured: the
shingle method only (the embedding method is the same model call in both).

    .venv/bin/python bench/contamination.py [--scenarios 300] [--plant 10]
"""
from __future__ import annotations

import argparse
import re
import time

from common import Result, data_file, record

from hybridtune.contamination import ContaminationConfig, scenario_text, session_hits
from hybridtune.evaluate.scenarios import load_scenarios_file
from hybridtune.real.config import RealConfig
from hybridtune.real.formats import read_file
from hybridtune.records import Message, Session


def pairwise(sessions: list[Session], scenarios, k: int, threshold: float) -> set[str]:
    """The removed curate/mix.py check: every session against every scenario."""
    def sh(text: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", text.lower())
        return {tuple(w[i:i + k]) for i in range(len(w) - k + 1)} if len(w) >= k else ({tuple(w)} if w else set())

    scen = [(sc.id, sh(scenario_text(sc))) for sc in scenarios]
    hits = set()
    for s in sessions:
        t = sh(s.text())
        if any(e and t and len(t & e) / len(e) >= threshold for _, e in scen):
            hits.add(s.id)
    return hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", type=int, default=300)
    ap.add_argument("--plant", type=int, default=10)
    a = ap.parse_args()
    raws = list(read_file(data_file("esconv", "train.json"), RealConfig(), "esconv"))
    sessions = [Session(id=f"esconv-{r.key}", source="real",
                        messages=[Message(role=t.role or "user", content=t.text) for t in r.turns if t.text.strip()])
                for r in raws]
    scenarios, _ = load_scenarios_file(data_file("cactus", "evaluation.json"))
    scenarios = scenarios[: a.scenarios]
    for i in range(a.plant):  # a scenario copied into a training session: contamination to find
        s = sessions[i * 7]
        s.messages.append(Message(role="user", content=scenarios[i * 3].scenario))
    planted = {sessions[i * 7].id for i in range(a.plant)}
    cfg = ContaminationConfig(method="shingles")

    t0 = time.perf_counter()
    base = pairwise(sessions, scenarios, cfg.shingle_size, cfg.threshold)
    t_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = set(session_hits(sessions, scenarios, cfg))
    t_new = time.perf_counter() - t0

    cmd = f".venv/bin/python bench/contamination.py --scenarios {a.scenarios} --plant {a.plant}"
    size = f"{len(sessions)} ESConv sessions x {len(scenarios)} CACTUS scenarios"
    record("contamination", [
        Result(benchmark=f"contamination check, {size}", figure=f"{t_new:.2f} s (inverted index)",
               baseline=f"{t_base:.2f} s (pairwise set intersections, the old mix check)",
               ratio=round(t_base / t_new, 2), target=">= 1 (speed-up)", met=t_base >= t_new, command=cmd,
               notes="both timed back to back in one process; the dev box was shared with other work, so read "
                     "the ratio, not the seconds"),
        Result(benchmark=f"planted copies found, {size}", figure=f"{len(new & planted)}/{len(planted)} found, "
               f"{len(new - planted)} other hits", baseline=f"pairwise: {len(base & planted)}/{len(planted)}, "
               f"{len(base - planted)} other", ratio=round(len(new & planted) / max(1, len(planted)), 3),
               target="1.0 and the same hits as the baseline", met=new == base and planted <= new, command=cmd),
    ])


if __name__ == "__main__":
    main()
