"""Stage `likelihood`: held-out, judge-free evaluation of every counselor variant.

Input: `mix/test_real.jsonl` and `mix/test_synthetic.jsonl` (Session records no variant
was trained on) and `models.json`. For each variant and split, the mean per-token negative
log-likelihood (nats) and perplexity of the counselor (`assistant`) turns given the
preceding dialogue, with the shared system prompt `ctx.system_prompt` first (as in
training). Sessions are paired across variants: a difference is token-weighted like the
table, with a BCa bootstrap CI and a paired sign-flip permutation test of that same
difference; variants are compared only when they tokenize the text the same way. With `train.seeds`,
every seed's model is scored and a session's scores are averaged over seeds before the test
(the session stays the unit); each comparison also gives its estimate per seed.
It answers the paper's question without a judge: does synthetic data help the model
predict what real counselors say?

Output: `likelihood/sessions.jsonl` (SessionNLL, one per variant x split x session) and
`likelihood/summary.json` ({"variants": {v: {split: {...}}}, "skipped": {v: why},
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
from ..variants import seed_index, variant_of
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


def _ratio(nll_sum, tokens, axis=-1):
    return np.sum(nll_sum, axis=axis) / np.sum(tokens, axis=axis)


def summarize_split(rows: list[SessionNLL], resamples: int, level: float, seed: int) -> dict[str, Any]:
    """Token-weighted mean NLL (nats/token), perplexity, and their BCa bootstrap CIs over sessions."""
    rows = [r for r in rows if r.tokens]
    if not rows:
        return {"sessions": 0, "tokens": 0, "nll": None, "ppl": None, "nll_ci": None, "ppl_ci": None}
    s = np.array([r.nll_sum for r in rows])
    t = np.array([r.tokens for r in rows], dtype=float)
    nll = float(s.sum() / t.sum())
    ci = S.bca_ci((s, t), _ratio, resamples, level, seed)
    return {
        "sessions": len(rows), "tokens": int(t.sum()), "turns": sum(r.turns for r in rows),
        "truncated_turns": sum(r.truncated_turns for r in rows),
        "nll": nll, "ppl": math.exp(nll), "nll_ci": list(ci) if ci else None,
        "ppl_ci": [math.exp(x) for x in ci] if ci else None, "ci_note": S.small_n_note(len(rows)),
    }


def sign_flip_exact(n: int, resamples: int) -> bool:
    """Whether `sign_flip_p` enumerates every sign pattern (else its p is a Monte Carlo one)."""
    return n <= 16 or resamples >= 2**n


def sign_flip_p(d: np.ndarray, w: np.ndarray, resamples: int, seed: int) -> float:
    """Two-sided paired permutation (sign-flip) p of the weighted mean difference sum(w*d)/sum(w):
    under no difference, each session's pair of scores is exchangeable. Exact (every one of the
    2**n sign patterns) up to n=16, else `resamples` random flips (smallest p 2/(R+1)). 1.0 when
    every d is 0. Its null is that each session's difference is symmetric around 0 (the two
    variants exchangeable on it); a difference that is zero on average but skewed is outside
    that null, and the test can reject it more or less often than alpha: a rejection says the
    variants differ on these sessions, with the weighted mean as the size of the difference."""
    if len(d) == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    n = len(d)
    res = stats.permutation_test(
        (d, np.zeros(n)), lambda x, y, axis=-1: np.sum((x - y) * w, axis=axis) / w.sum(),
        permutation_type="samples", vectorized=True, alternative="two-sided",
        n_resamples=max(resamples, 2**n if sign_flip_exact(n, resamples) else 0), random_state=np.random.default_rng(seed))
    return float(res.pvalue)


def paired_comparison(a: str, b: str, split: str, rows: list[SessionNLL], resamples: int, level: float,
                      seed: int) -> dict[str, Any] | None:
    """Paired per-session comparison of NLL, weighted by tokens as the table is.

    estimate = NLL(a) - NLL(b) over the sessions both variants scored, each side token-weighted
    (sum of nats / sum of tokens, exactly the difference of the two table rows on those
    sessions; negative: `a` predicts the held-out counselor turns better), with a BCa
    bootstrap CI over sessions; p from a paired sign-flip permutation test of that same
    weighted difference, so the test, the interval, the table and the direction of a claim
    all use one statistic. Per-token NLL is only comparable under one tokenizer: when the
    two variants counted different tokens for the same text, the comparison is marked
    `comparable: false` with the reason and gets no p (nats per token of different
    tokenizers measure different things).
    """
    by = {(r.variant, r.session_id): r for r in rows if r.split == split and r.tokens}
    common = sorted({sid for v, sid in by if v == a} & {sid for v, sid in by if v == b})
    if not common:
        return None
    sa = np.array([by[(a, sid)].nll_sum for sid in common])
    sb = np.array([by[(b, sid)].nll_sum for sid in common])
    ta = np.array([by[(a, sid)].tokens for sid in common], dtype=float)
    tb = np.array([by[(b, sid)].tokens for sid in common], dtype=float)
    out: dict[str, Any] = {"a": a, "b": b, "split": split, "metric": "nll", "n": len(common),
                           "estimator": "token-weighted difference", "effect_size": None}
    if not np.array_equal(ta, tb):
        differ = int(np.sum(ta != tb))
        return {**out, "comparable": False, "estimate": None, "ci": None, "p": None, "n_nonzero": 0,
                "note": f"tokenizers differ: {differ} of {len(common)} sessions have different token counts "
                        f"under {a} and {b}, so nats per token are not comparable"}
    d = (sa - sb) / ta  # per-session difference per token; weighted by ta it gives the table's difference
    ci = S.bca_ci((sa - sb, ta), _ratio, resamples, level, seed)
    n = len(common)
    nz = int(np.sum(d != 0))
    return {**out, "comparable": True, "estimate": float((sa - sb).sum() / ta.sum()),
            "ci": list(ci) if ci else None, "ci_note": S.small_n_note(n),
            "p": sign_flip_p(d, ta, resamples, seed) if n > 1 else math.nan, "n_nonzero": nz,
            "resamples": resamples, "p_min": S.resampling_floor(nz, resamples, exact=sign_flip_exact(n, resamples))}


def summarize(rows: list[SessionNLL], variants: list[str], resamples: int, level: float, seed: int,
              alpha: float = 0.05) -> dict:
    """summary.json content (without `skipped`): per variant x split over the sessions every
    variant scored, and paired comparisons (every pair, later variant first, Holm-corrected across pairs x splits; the report
    re-adjusts them together with every other claim of its verdict)."""
    out: dict[str, Any] = {"variants": {}, "comparisons": [], "unit": "nats per counselor token", "confidence": level}
    # paired like the comparisons: each split's table covers the sessions every variant scored
    common = {sp: set.intersection(*[{r.session_id for r in rows if r.variant == v and r.split == sp and r.tokens}
                                     for v in variants]) if variants else set() for sp in SPLITS}
    for v in variants:
        out["variants"][v] = {
            sp: summarize_split([r for r in rows if r.variant == v and r.split == sp and r.session_id in common[sp]],
                                resamples, level, seed)
            for sp in SPLITS
        }
    comps = [c for a, b in S.pairs(variants) for sp in SPLITS
             if (c := paired_comparison(a, b, sp, rows, resamples, level, seed)) is not None]
    S.adjust_family(comps, alpha)
    for c in comps:
        c["p"] = None if c["p"] is None or math.isnan(c["p"]) else c["p"]
    out["comparisons"] = comps
    return out


def pool_seeds(rows: list[SessionNLL]) -> list[SessionNLL]:
    """Every seed's model of a variant (train.seeds: variant~s<seed>) as one row per declared
    variant, split and held-out session: nll_sum and tokens averaged over seeds, so the session
    stays the unit of the test and training noise is averaged in. No replicates: unchanged."""
    if all(variant_of(r.variant) == r.variant for r in rows):
        return rows
    groups: dict[tuple[str, str, str], list[SessionNLL]] = {}
    for r in rows:
        groups.setdefault((variant_of(r.variant), r.split, r.session_id), []).append(r)
    return [rs[0].model_copy(update={"variant": v, "nll_sum": float(np.mean([r.nll_sum for r in rs])),
                                     "tokens": round(float(np.mean([r.tokens for r in rs])))})
            for (v, _, _), rs in groups.items()]


def seed_spread(results: dict, rows: list[SessionNLL], seeds: list[int], resamples: int, seed: int) -> None:
    """Each comparison's estimate for each seed's models alone (`seed_estimates`, `seed_sd`), in
    place: the spread between training seeds beside the pooled test (an untrained variant, with
    one model, enters every seed)."""
    replicated = {variant_of(r.variant) for r in rows if variant_of(r.variant) != r.variant}
    for c in results["comparisons"]:
        ests = []
        for i in range(len(seeds)):
            mine = [r.model_copy(update={"variant": variant_of(r.variant)}) for r in rows
                    if (variant_of(r.variant) in replicated and seed_index(r.variant, seeds) == i)
                    or variant_of(r.variant) not in replicated]
            one = paired_comparison(c["a"], c["b"], c["split"], mine, min(resamples, 200), 0.95, seed)
            ests.append(one["estimate"] if one else None)
        got = [e for e in ests if e is not None]
        c["seed_estimates"] = ests
        c["seed_sd"] = float(np.std(got, ddof=1)) if len(got) > 1 else None


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
    names = list(dict.fromkeys(variant_of(v) for v in scored))
    results = summarize(pool_seeds(rows), names, ev.bootstrap_resamples, 0.95, ctx.cfg.seed, ev.alpha)
    if len(ctx.cfg.train.seeds) > 1:
        seed_spread(results, rows, ctx.cfg.train.seeds, ev.bootstrap_resamples, ctx.cfg.seed)
    results["skipped"] = skipped
    results["split_sizes"] = {sp: len(ss) for sp, ss in splits.items()}
    st.write_summary(results)
    return {"variants": len(scored), "skipped": len(skipped), "sessions": len(rows)}
