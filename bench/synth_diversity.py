"""Persona diversity: quota-sampled attributes vs the naive baseline, same embedded model, same run.

Quota: `make_personas` (attributes dealt by coverage quota from attributes.yaml, narrative by the
generator). Naive: the same generator asked for a persona with no attributes (prompt
synth_persona_naive), one independent sample per persona. Both narratives are embedded with
all-MiniLM-L6-v2; figures are the Vendi score and mean pairwise cosine distance.

    .venv/bin/python bench/synth_diversity.py --n 200     # the issue's size
    .venv/bin/python bench/synth_diversity.py --n 40      # what fits a shared 2-core machine
"""
from __future__ import annotations

import argparse
import asyncio
import time

from common import Result, bench_ctx, record

from hybridtune.embed import embed, mean_pairwise_distance, vendi_score
from hybridtune.errors import StructuredOutputError
from hybridtune.synth.personas import PersonaDraft, make_personas


async def naive(ctx, n: int) -> list[str]:
    tpl = ctx.domain.prompt("synth_persona_naive")
    out = []
    for i in range(n):
        try:
            d = (await ctx.llm("generator").chat(tpl.render(), schema=PersonaDraft, sample=i)).parsed
            out.append(f"{d.name}: {d.narrative}")
        except StructuredOutputError:
            pass  # counted as invalid below
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="personas per arm")
    ap.add_argument("--max-tokens", type=int, default=220, help="generator max_tokens")
    a = ap.parse_args()
    sets = [f"synth.personas={a.n}", "synth.persona_checks=false", "synth.max_regenerations=0", "llm.max_reasks=1",
            "llm.max_failure_rate=1", "llm.cache=false", f"roles.generator.max_tokens={a.max_tokens}",
            "roles.generator.temperature=0.9", "seed=11"]
    t0 = time.time()
    with bench_ctx(*sets) as ctx:
        quota = [p.narrative for p in asyncio.run(make_personas(ctx, ctx.store.stage("personas"), a.n, 11))]
        base = asyncio.run(naive(ctx, a.n))
    Xq, Xn = embed(quota), embed(base)
    vq, vn = vendi_score(Xq), vendi_score(Xn)
    dq, dn = mean_pairwise_distance(Xq), mean_pairwise_distance(Xn)
    cmd = f".venv/bin/python bench/synth_diversity.py --n {a.n} --max-tokens {a.max_tokens}"
    note = (f"n={a.n} requested per arm; valid: quota {len(quota)}, naive {len(base)} (truncated/invalid JSON dropped); "
            f"SmolLM2-135M via llama.cpp, temperature 0.9; {time.time() - t0:.0f}s wall")
    record("synth_diversity", [
        Result("persona embedding diversity (Vendi score)", f"{vq:.2f}", f"naive prompt {vn:.2f}",
               round(vq / vn, 3) if vn else None, "> 1 (clearly higher)", bool(vn and vq / vn > 1.1), cmd, note,
               {"quota_vendi": vq, "naive_vendi": vn, "quota_n": len(quota), "naive_n": len(base)}),
        Result("persona mean pairwise cosine distance", f"{dq:.3f}", f"naive prompt {dn:.3f}",
               round(dq / dn, 3) if dn else None, "> 1", bool(dn and dq > dn), cmd, note),
    ])


if __name__ == "__main__":
    main()
