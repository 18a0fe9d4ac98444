"""Stage `likelihood`: held-out, judge-free evaluation of every counselor variant.

Input: `mix/test_real.jsonl` and `mix/test_synthetic.jsonl` (Session records no variant
was trained on) and `models.json`. For each variant and split, the mean per-token negative
log-likelihood (nats) and perplexity of the counselor (`assistant`) turns given the
preceding dialogue, with the shared system prompt `ctx.system_prompt` first (as in
training). Sessions are paired across variants, so differences get bootstrap CIs.
It answers the paper's question without a judge: does synthetic data help the model
predict what real counselors say?

Output: `likelihood/sessions.jsonl` (SessionNLL, one per variant x split x session) and
`likelihood/results.json` ({"variants": {v: {split: {...}}}, "skipped": {v: why},
"comparisons": [...]}). A backend that cannot return prompt log-probabilities (hosted
OpenAI) is skipped with its reason, never faked.

    hybridtune run configs/demo.yaml --stage likelihood
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from ..context import Context, map_items
from ..llm import NotSupported, TokenLogprobs
from ..records import ModelEntry, Record, Session, stable_id
from ..registry import counselor_llm, declared_entries
from ..store import StageDir
from . import stats as S

SPLITS = ("test_real", "test_synthetic")
PROBE = [{"role": "user", "content": "Hello."}, {"role": "assistant", "content": "Hello, how are you today?"}]


class SessionNLL(Record):
    """Negative log-likelihood of one held-out session's counselor turns under one variant."""

    variant: str
    split: str
    session_id: str
    turns: int  # assistant turns scored
    truncated_turns: int = 0  # assistant turns past the context window (not scored)
    tokens: int
    nll_sum: float  # nats, summed over the scored tokens

    @property
    def nll(self) -> float:
        return self.nll_sum / self.tokens if self.tokens else math.nan


def scoring_messages(system_prompt: str, session: Session, max_turns: int) -> list[dict[str, str]]:
    """The dialogue as the variants saw training data: shared system prompt, then the turns
    up to and including the `max_turns`-th counselor turn (the session's own system message is dropped)."""
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    n = 0
    for m in session.messages:
        if m.role == "system":
            continue
        if m.role == "assistant" and n == max_turns:
            break
        msgs.append({"role": m.role, "content": m.content})
        n += m.role == "assistant"
    return msgs


def nll_of(turns: list[TokenLogprobs]) -> tuple[float, int, int, int]:
    """(nll_sum, tokens, scored turns, truncated turns) of a backend's per-turn log-probabilities."""
    nll = -sum(sum(t.logprobs) for t in turns)
    tokens = sum(len(t.logprobs) for t in turns)
    scored = sum(1 for t in turns if t.logprobs)
    return nll, tokens, scored, len(turns) - scored


def _ci(data: tuple[np.ndarray, ...], statistic, resamples: int, level: float, seed: int) -> list[float] | None:
    """Percentile bootstrap CI of `statistic` over sessions (paired arrays); None when undefined."""
    if len(data[0]) < 2:
        return None
    if all(np.all(d == d[0]) for d in data):  # no spread: the interval is the point
        v = float(statistic(*data, axis=-1))
        return [v, v]
    res = stats.bootstrap(data, statistic, paired=True, vectorized=True, n_resamples=resamples,
                          confidence_level=level, method="percentile", random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return None if not (math.isfinite(lo) and math.isfinite(hi)) else [lo, hi]


def _ratio(nll_sum, tokens, axis=-1):
    return np.sum(nll_sum, axis=axis) / np.sum(tokens, axis=axis)


def summarize_split(rows: list[SessionNLL], resamples: int, level: float, seed: int) -> dict[str, Any]:
    """Token-weighted mean NLL (nats/token), perplexity, and their bootstrap CIs over sessions."""
    rows = [r for r in rows if r.tokens]
    if not rows:
        return {"sessions": 0, "tokens": 0, "nll": None, "ppl": None, "nll_ci": None, "ppl_ci": None}
    s = np.array([r.nll_sum for r in rows])
    t = np.array([r.tokens for r in rows], dtype=float)
    nll = float(s.sum() / t.sum())
    ci = _ci((s, t), _ratio, resamples, level, seed)
    return {
        "sessions": len(rows), "tokens": int(t.sum()), "turns": sum(r.turns for r in rows),
        "truncated_turns": sum(r.truncated_turns for r in rows),
        "nll": nll, "ppl": math.exp(nll), "nll_ci": ci, "ppl_ci": [math.exp(x) for x in ci] if ci else None,
    }


def paired_comparison(a: str, b: str, split: str, rows: list[SessionNLL], resamples: int, level: float,
                      seed: int) -> dict[str, Any] | None:
    """Paired per-session comparison of per-token NLL on the sessions both variants scored.

    mean_diff = mean(nll_a - nll_b) in nats/token (negative: `a` predicts the held-out
    counselor turns better), with a bootstrap CI; p from Wilcoxon signed-rank; effect_size
    is the matched-pairs rank-biserial of nll_a vs nll_b (negative: `a` lower), as in the
    judge comparisons of `stats.paired_comparisons`.
    """
    by = {(r.variant, r.session_id): r for r in rows if r.split == split and r.tokens}
    common = sorted({sid for v, sid in by if v == a} & {sid for v, sid in by if v == b})
    if not common:
        return None
    x = np.array([by[(a, sid)].nll for sid in common])
    y = np.array([by[(b, sid)].nll for sid in common])
    ci = _ci((x - y,), np.mean, resamples, level, seed)
    return {
        "a": a, "b": b, "split": split, "metric": "nll", "n": len(common), "mean_diff": float(np.mean(x - y)),
        "ci": ci, "p": S.wilcoxon_p(x, y) if len(common) > 1 else math.nan, "effect_size": S.rank_biserial(x, y),
    }


def summarize(rows: list[SessionNLL], variants: list[str], resamples: int, level: float, seed: int,
              alpha: float = 0.05) -> dict:
    """results.json content (without `skipped`): per variant x split, and paired comparisons
    (every pair, later variant first, Holm-corrected across pairs x splits)."""
    out: dict[str, Any] = {"variants": {}, "comparisons": [], "unit": "nats per counselor token", "confidence": level}
    for v in variants:
        out["variants"][v] = {
            sp: summarize_split([r for r in rows if r.variant == v and r.split == sp], resamples, level, seed)
            for sp in SPLITS
        }
    comps = [c for a, b in S.pairs(variants) for sp in SPLITS
             if (c := paired_comparison(a, b, sp, rows, resamples, level, seed)) is not None]
    for c, padj in zip(comps, S.holm([c["p"] for c in comps]), strict=True):
        c["p_adj"] = None if math.isnan(padj) else padj
        c["p"] = None if math.isnan(c["p"]) else c["p"]
        c["significant"] = bool(c["p_adj"] is not None and c["p_adj"] < alpha)
    out["comparisons"] = comps
    return out


def _sessions(ctx: Context, split: str) -> list[Session]:
    mix = ctx.store.stage("mix")
    return list(mix.read(f"{split}.jsonl", Session))[: ctx.cfg.evaluate.trust.likelihood_sessions]


def row_key(ctx: Context, entry: ModelEntry, split: str, s: Session) -> str:
    """Everything that defines a score: a retrained variant or a new prompt is scored afresh on resume."""
    return stable_id("nll", entry.variant, entry.model, entry.adapter, entry.data_hash, split, s.id,
                     ctx.cfg.evaluate.trust.likelihood_turns, ctx.system_prompt)


async def run(ctx: Context, st: StageDir) -> dict:
    tc = ctx.cfg.evaluate.trust
    reg = declared_entries(ctx, strict=False)  # as simulate: the declared variants, in order
    if not reg:
        ctx.log("[yellow]likelihood: no counselor variants in models.json; nothing to score[/yellow]")
    splits = {sp: _sessions(ctx, sp) for sp in SPLITS}
    if not any(splits.values()):
        ctx.log("[yellow]likelihood: mix/test_real.jsonl and mix/test_synthetic.jsonl are empty; "
                "nothing to score[/yellow]")
    skipped: dict[str, str] = {}
    scored: list[str] = []
    for variant, entry in reg.items():
        llm = counselor_llm(ctx, entry)
        try:  # one tiny call first: a backend without prompt logprobs is skipped, not counted as failures
            await llm.token_logprobs([{"role": "system", "content": ctx.system_prompt}, *PROBE])
        except NotSupported as e:
            skipped[variant] = str(e)
            ctx.log(f"[yellow]likelihood: variant {variant} skipped: {e}[/yellow]")
            continue
        scored.append(variant)
        items = [(row_key(ctx, entry, sp, s), (sp, s)) for sp, ss in splits.items() for s in ss]

        async def one(key: str, item: tuple[str, Session], variant=variant, llm=llm) -> SessionNLL:
            sp, s = item
            turns = await llm.token_logprobs(scoring_messages(ctx.system_prompt, s, tc.likelihood_turns))
            nll, tokens, n, cut = nll_of(turns)
            return SessionNLL(id=key, variant=variant, split=sp,
                              session_id=s.id, turns=n, truncated_turns=cut, tokens=tokens, nll_sum=nll)

        await map_items(ctx, st, items, one, "sessions.jsonl", label=f"likelihood {variant}", concurrency=2)
    keys = {row_key(ctx, reg[v], sp, s) for v in scored for sp, ss in splits.items() for s in ss}
    rows = [r for r in st.read("sessions.jsonl", SessionNLL) if r.id in keys]
    ev = ctx.cfg.evaluate  # the same resamples and significance level as the judge comparisons
    results = summarize(rows, scored, ev.bootstrap_resamples, 0.95, ctx.cfg.seed, ev.alpha)
    results["skipped"] = skipped
    results["split_sizes"] = {sp: len(ss) for sp, ss in splits.items()}
    st.write_json("results.json", results)
    return {"variants": len(scored), "skipped": len(skipped), "sessions": len(rows)}
