"""Judge and annotator against experts' labels (AnnoMI): part of the calibrate stage and of
bench/judge_experts.py.

AnnoMI (public domain) gives each transcript an expert **MI quality** (high or low) and each
therapist utterance a **behaviour code** (reflection, question, therapist_input, other).

- Judge: each low-quality transcript is matched with a high-quality one of the same topic
  (any high one when its topic has none); the judge rates one excerpt of each (the middle
  `window` messages) with the score stage's own rubrics. Per metric: the AUC of its ratings
  for high against low (over the high/low pairs that share a topic, and pooled), with a
  bootstrap CI over the low transcripts, and the share of matched pairs it ranks the right
  way round (Wilson CI). The judge passes when the headline AUC's CI lower bound is above
  `evaluate.trust.expert_threshold` (0.5 = chance), for every metric.
- Annotator: the real stage's technique labels of therapist turns, mapped to AnnoMI's codes
  by the pack's `expert_codes.yaml`, against the experts' codes: Cohen's kappa and F1 per
  class, against a majority-class baseline, with a bootstrap CI of kappa (`annotator_agreement`).

The data: `evaluate.trust.experts` is a catalogue name (its downloaded copy) or a path to
AnnoMI-simple.csv; without it the check does not run and says so.

    res = await experts.check(ctx, st)      # calibrate stage: {"ran": bool, "note"|"metrics", ...}
    ann = await experts.annotator_check(ctx, st)   # with evaluate.trust.expert_turns > 0
"""
from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import cohen_kappa_score, f1_score

from .. import catalogue
from ..context import Context, map_items
from ..errors import TooManyFailures, UserError
from ..records import Message, Record, Session, stable_id
from ..store import StageDir
from . import stats as S
from .metrics import metric as get_metric
from .dialogue import transcript

QUALITIES = ("high", "low")
CODES = ("reflection", "question", "therapist_input", "other")
FILE = "AnnoMI-simple.csv"


class Utterance(BaseModel):
    role: str  # "assistant" (therapist) | "user" (client)
    text: str
    behaviour: str | None = None  # therapist code
    talk_type: str | None = None  # client code


class ExpertTranscript(BaseModel):
    id: str
    quality: str
    topic: str
    utterances: list[Utterance]

    @property
    def topic_key(self) -> str:
        """First listed topic, case and spaces folded ("smoking cessation " = "Smoking cessation")."""
        return self.topic.split(";")[0].strip().lower()


class ExpertRating(Record):
    transcript_id: str
    quality: str
    topic: str
    metric: str
    sample: int
    score: float
    judge_model: str
    prompt: str


# -- data ---------------------------------------------------------------------------


def locate(spec: str | None) -> tuple[Path | None, str]:
    """(AnnoMI-simple.csv, "") or (None, why the check cannot run)."""
    if not spec:
        return None, "evaluate.trust.experts is not set"
    p = Path(spec).expanduser()
    if p.is_dir():
        p = p / FILE
    if p.is_file():
        return p, ""
    if catalogue.is_name(spec):
        try:
            files, _ = catalogue.resolve(spec, "real", f"evaluate.trust.experts: {spec}")
        except UserError as e:
            return None, str(e)
        return files[0], ""
    return None, f"evaluate.trust.experts: {spec} is neither a file nor a catalogue name"


def load_annomi(path: Path) -> list[ExpertTranscript]:
    """Transcripts in file order, utterances in order (AnnoMI-simple.csv columns)."""
    out: dict[str, ExpertTranscript] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                tid, quality = row["transcript_id"], row["mi_quality"].strip().lower()
                who, text = row["interlocutor"].strip(), row["utterance_text"]
            except KeyError as e:
                raise UserError(f"{path}:{n}: column {e} missing; expected AnnoMI-simple.csv") from None
            if quality not in QUALITIES:
                raise UserError(f"{path}:{n}: mi_quality '{quality}' is not high or low")
            t = out.setdefault(tid, ExpertTranscript(id=tid, quality=quality, topic=row.get("topic", ""),
                                                     utterances=[]))
            therapist = who == "therapist"
            t.utterances.append(Utterance(
                role="assistant" if therapist else "user", text=text.strip(),
                behaviour=_code(row.get("main_therapist_behaviour")) if therapist else None,
                talk_type=None if therapist else _code(row.get("client_talk_type"))))
    return list(out.values())


def _code(x: str | None) -> str | None:
    x = (x or "").strip()
    return None if x in ("", "n/a") else x


def matched_pairs(ts: list[ExpertTranscript], n: int, seed: int) -> list[tuple[ExpertTranscript, ExpertTranscript]]:
    """Up to n (high, low) pairs: each low transcript with a high one of its topic when there is
    an unused one, else any unused high one (seeded)."""
    rng = random.Random(seed)
    lows = [t for t in ts if t.quality == "low"]
    highs = [t for t in ts if t.quality == "high"]
    rng.shuffle(lows)
    rng.shuffle(highs)
    # lows whose topic has a high one first, so a scarce same-topic high goes to a low that can use it
    lows.sort(key=lambda t: not any(h.topic_key == t.topic_key for h in highs))
    pairs = []
    for low in lows[:n]:
        same = [h for h in highs if h.topic_key == low.topic_key]
        if not (pick := (same or highs)[:1]):
            break
        highs.remove(pick[0])
        pairs.append((pick[0], low))
    return pairs


def excerpt(t: ExpertTranscript, window: int) -> list[Message]:
    """The middle `window` messages (consecutive utterances of one speaker merged): past the
    greeting, where the counseling style shows."""
    msgs: list[Message] = []
    for u in t.utterances:
        if msgs and msgs[-1].role == u.role:
            msgs[-1] = Message(role=u.role, content=f"{msgs[-1].content} {u.text}")
        elif u.text:
            msgs.append(Message(role=u.role, content=u.text))
    start = max(0, (len(msgs) - window) // 2)
    return msgs[start:start + window]


# -- judge against experts ------------------------------------------------------------


async def rate(ctx: Context, st: StageDir, ts: list[ExpertTranscript], metrics: list[str], k: int,
               window: int) -> list[ExpertRating]:
    judge = ctx.llm("judge")
    tpls = {m: ctx.domain.prompt(get_metric(m).rubric) for m in metrics}
    work = [(stable_id("experts", t.id, window, m, s, judge.model, tpls[m].tag), (t, m, s))
            for t in ts for m in metrics for s in range(k)]

    async def one(key: str, w: tuple[ExpertTranscript, str, int]) -> ExpertRating:
        t, m, s = w
        sess = Session(id=stable_id("annomi", t.id), source="real", messages=excerpt(t, window))
        reply = await judge.chat(tpls[m].render(transcript=transcript(ctx, sess), scenario=t.topic.strip()),
                                 schema=get_metric(m).schema(), sample=s)
        return ExpertRating(id=key, transcript_id=t.id, quality=t.quality, topic=t.topic_key, metric=m, sample=s,
                            score=get_metric(m).value(reply.parsed)[0], judge_model=judge.model, prompt=tpls[m].tag)

    try:
        await map_items(ctx, st, work, one, "experts.jsonl", label="calibrate judge vs experts",
                        concurrency=ctx.cfg.evaluate.concurrency)
    except TooManyFailures as e:  # a judge that cannot answer is a finding, as in calibrate.rate
        ctx.log(f"[yellow]calibrate: {e}[/yellow]")
    keys = {key for key, _ in work}
    return [r for r in st.read("experts.jsonl", ExpertRating) if r.id in keys]


def _conc(a: float, b: float) -> float:
    return 1.0 if a > b else 0.5 if a == b else 0.0


def auc(high: dict[str, float], low: dict[str, float], topic: dict[str, str],
        within: bool) -> tuple[float | None, dict[str, list[float]]]:
    """(AUC, concordances grouped by low transcript): the chance a high transcript is rated above a
    low one, over every high/low pair (of the same topic when `within`)."""
    by_low: dict[str, list[float]] = defaultdict(list)
    for lo, lv in low.items():
        for hi, hv in high.items():
            if not within or topic[hi] == topic[lo]:
                by_low[lo].append(_conc(hv, lv))
    allc = [c for v in by_low.values() for c in v]
    return (float(np.mean(allc)) if allc else None), by_low


def cluster_ci(by_low: dict[str, list[float]], resamples: int, level: float, seed: int) -> list[float] | None:
    """Percentile bootstrap CI of the AUC, resampling low transcripts with their comparisons."""
    groups = [np.asarray(v) for v in by_low.values() if v]
    if len(groups) < 2:
        return None
    rng = np.random.default_rng(seed)
    sums, counts = np.array([g.sum() for g in groups]), np.array([len(g) for g in groups])
    idx = rng.integers(0, len(groups), size=(resamples, len(groups)))
    stat = sums[idx].sum(1) / counts[idx].sum(1)
    lo = (1 - level) / 2
    return [float(np.quantile(stat, lo)), float(np.quantile(stat, 1 - lo))]


def analyze(ratings: list[ExpertRating], pairs: list[tuple[str, str]], metrics: list[str], threshold: float,
            resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per metric: AUC within topic and pooled with CIs, matched-pair concordance, and `passes`
    (headline AUC's CI lower bound above `threshold`; headline = within topic when any high/low
    pair shares a topic, else pooled)."""
    out: dict[str, Any] = {}
    for m in metrics:
        vals: dict[str, list[float]] = defaultdict(list)
        info: dict[str, ExpertRating] = {}
        for r in ratings:
            if r.metric == m:
                vals[r.transcript_id].append(r.score)
                info[r.transcript_id] = r
        mean = {t: float(np.mean(v)) for t, v in vals.items()}
        topic = {t: info[t].topic for t in mean}
        high = {t: v for t, v in mean.items() if info[t].quality == "high"}
        low = {t: v for t, v in mean.items() if info[t].quality == "low"}
        w, w_by = auc(high, low, topic, within=True)
        p, p_by = auc(high, low, topic, within=False)
        conc = [_conc(mean[h], mean[lo]) for h, lo in pairs if h in mean and lo in mean]
        share = float(np.mean(conc)) if conc else None
        head, by = (w, w_by) if w is not None else (p, p_by)
        head_ci = cluster_ci(by, resamples, level, seed)
        out[m] = {
            "auc": head, "auc_ci": head_ci, "auc_kind": "within topic" if w is not None else "pooled",
            "auc_within_topic": w, "within_topic_pairs": sum(len(v) for v in w_by.values()),
            "auc_pooled": p, "auc_pooled_ci": cluster_ci(p_by, resamples, level, seed),
            "matched_pairs": len(conc), "matched_share": share,
            "matched_ci": list(ci) if share is not None and (ci := S.wilson_ci(share, len(conc), level)) else None,
            "high": len(high), "low": len(low),
            "mean_high": _mean(list(high.values())), "mean_low": _mean(list(low.values())),
            "passes": bool(head_ci is not None and head_ci[0] > threshold),
        }
    return out


def _mean(x: list[float]) -> float | None:
    return float(np.mean(x)) if x else None


def verdict(res: dict[str, Any], threshold: float) -> str:
    """One line: what the judge made of the experts' high/low quality."""
    parts = [f"{m} AUC {v['auc']:.2f} ({v['auc_kind']}" + (f", 95% CI {v['auc_ci'][0]:.2f}-{v['auc_ci'][1]:.2f}"
             if v["auc_ci"] else ", no CI") + ")" if v["auc"] is not None else f"{m} AUC n/a"
             for m, v in res.items()]
    ok = bool(res) and all(v["passes"] for v in res.values())
    head = "tells experts' high from low MI quality" if ok else "cannot tell experts' high from low MI quality"
    return f"judge {head}: {'; '.join(parts)} (needs CI lower bound > {threshold:.2f})"


def expert_source(tc, count: int, key: str) -> tuple[Path | None, dict | None]:
    """The expert labels' file, or (None, the "did not run" record): `count` (config `key`) is 0 or
    the labels are not at hand."""
    if count == 0:
        return None, {"ran": False, "note": f"evaluate.trust.{key} is 0"}
    path, why = locate(tc.experts)
    return (path, None) if path is not None else (None, {"ran": False, "note": f"no expert labels ({why})"})


async def check(ctx: Context, st: StageDir) -> dict[str, Any]:
    """The calibrate stage's judge-against-experts check; {"ran": False, "note": why} without data."""
    tc = ctx.cfg.evaluate.trust
    path, skipped = expert_source(tc, tc.expert_pairs, "expert_pairs")
    if path is None:
        return skipped
    pairs = matched_pairs(load_annomi(path), tc.expert_pairs, ctx.cfg.seed)
    if not pairs:
        return {"ran": False, "note": f"{path}: no low-quality transcript with a high-quality one to compare"}
    ts = [t for pair in pairs for t in pair]
    metrics = list(ctx.cfg.evaluate.metrics)
    ratings = await rate(ctx, st, ts, metrics, tc.calib_samples, tc.expert_window)
    res = analyze(ratings, [(h.id, lo.id) for h, lo in pairs], metrics, tc.expert_threshold,
                  ctx.cfg.evaluate.bootstrap_resamples, seed=ctx.cfg.seed)
    ok = bool(res) and all(v["passes"] for v in res.values())
    return {"ran": True, "passes": ok, "verdict": verdict(res, tc.expert_threshold), "source": str(path),
            "pairs": len(pairs), "same_topic_pairs": sum(h.topic_key == lo.topic_key for h, lo in pairs),
            "window": tc.expert_window, "ratings": len(ratings),
            "ratings_planned": len(ts) * len(metrics) * tc.calib_samples, "threshold": tc.expert_threshold,
            "metrics": res}


# -- annotator against experts ----------------------------------------------------------


async def annotator_check(ctx: Context, st: StageDir) -> dict[str, Any]:
    """The calibrate stage's annotator-against-experts check (`evaluate.trust.expert_turns`)."""
    tc = ctx.cfg.evaluate.trust
    path, skipped = expert_source(tc, tc.expert_turns, "expert_turns")
    if path is None:
        return skipped
    res = await annotator_agreement(ctx, st, load_annomi(path), tc.expert_turns, ctx.cfg.seed)
    return {"ran": True, "source": str(path), "annotator_model": ctx.llm("annotator").model, **res}



def code_map(ctx: Context) -> dict[str, str]:
    """technique id -> AnnoMI therapist code, from the pack's expert_codes.yaml."""
    f = ctx.domain.root / "expert_codes.yaml"
    data = ctx.domain.data_file("expert_codes.yaml") if f.is_file() else None
    if not isinstance(data, dict) or not isinstance(data.get("therapist_behaviour"), dict):
        raise UserError(f"{f}: expected therapist_behaviour: {{code: [technique ids]}}; copy it from domains/cbt")
    known = {t.id for t in ctx.domain.techniques}
    out = {}
    for code, ids in data["therapist_behaviour"].items():
        if code not in CODES:
            raise UserError(f"{f}: '{code}' is not an AnnoMI code ({', '.join(CODES)})")
        for i in ids or []:
            if i not in known:
                raise UserError(f"{f}: technique '{i}' is not in techniques.yaml; fix the id or remove it")
            out[i] = code
    return out


def to_code(techniques: list[str], mapping: dict[str, str]) -> str:
    """The code of the first labelled technique (the annotator lists the main one first); none -> other."""
    return next((mapping[t] for t in techniques if t in mapping), "other")


def agreement(gold: list[str], pred: list[str], classes: tuple[str, ...] = CODES) -> dict[str, Any]:
    """Overall and per-class (one against the rest) Cohen's kappa and F1, with the majority-class
    baseline (always the commonest expert code) scored the same way."""
    if not gold:
        return {"n": 0}
    major = max(classes, key=gold.count)
    base = [major] * len(gold)

    def scores(p: list[str]) -> dict[str, Any]:
        per = {c: {"kappa": _kappa([g == c for g in gold], [x == c for x in p]),
                   "f1": float(f1_score([g == c for g in gold], [x == c for x in p], zero_division=0)),
                   "support": gold.count(c)} for c in classes}
        return {"kappa": _kappa(gold, p), "accuracy": float(np.mean([g == x for g, x in zip(gold, p)])),
                "macro_f1": float(f1_score(gold, p, labels=list(classes), average="macro", zero_division=0)),
                "per_class": per}

    return {"n": len(gold), "majority_class": major, "annotator": scores(pred), "baseline": scores(base),
            "kappa_ci": kappa_ci(gold, pred)}


def kappa_ci(gold: list[str], pred: list[str], resamples: int = 1000, level: float = 0.95,
             seed: int = 0) -> list[float] | None:
    """Percentile bootstrap CI of Cohen's kappa over turns (resamples where it is undefined are left out)."""
    if len(gold) < 2:
        return None
    rng = np.random.default_rng(seed)
    g, p = np.asarray(gold), np.asarray(pred)
    draws = (_kappa(list(g[idx]), list(p[idx])) for idx in rng.integers(0, len(g), (resamples, len(g))))
    ks = [k for k in draws if k is not None]
    lo = (1 - level) / 2
    return [float(np.quantile(ks, lo)), float(np.quantile(ks, 1 - lo))] if ks else None


def _kappa(a: list, b: list) -> float | None:
    """Cohen's kappa; 0 when one side is constant and the other is not (no agreement beyond chance),
    None when both are the same constant (undefined)."""
    if len(set(a)) == 1 and len(set(b)) == 1 and a[0] == b[0]:
        return None
    k = cohen_kappa_score(a, b)
    return 0.0 if np.isnan(k) else float(k)


def therapist_turns(ts: list[ExpertTranscript], n: int, context: int, seed: int) -> list[tuple[Session, int, str]]:
    """Up to n coded therapist utterances (seeded draw across transcripts) as (session, index, code);
    the session holds the utterance and up to `context` utterances before it."""
    cands = [(t, i) for t in ts for i, u in enumerate(t.utterances) if u.role == "assistant" and u.behaviour]
    random.Random(seed).shuffle(cands)
    out = []
    for t, i in cands[:n]:
        us = t.utterances[max(0, i - context):i + 1]
        s = Session(id=stable_id("annomi-turn", t.id, i), source="real",
                    messages=[Message(role=u.role, content=u.text) for u in us])
        out.append((s, len(us) - 1, str(t.utterances[i].behaviour)))
    return out


async def annotator_agreement(ctx: Context, st: StageDir, ts: list[ExpertTranscript], n: int,
                              seed: int) -> dict[str, Any]:
    """The real stage's turn annotator on n expert-coded therapist turns, mapped and scored."""
    from ..real.annotate import annotate_turn

    mapping = code_map(ctx)
    turns = therapist_turns(ts, n, ctx.cfg.real.annotate.context_turns, seed)
    work = [(stable_id("experts-annotate", s.id, i), (s, i, code)) for s, i, code in turns]

    async def one(key: str, w: tuple[Session, int, str]) -> Record:
        s, i, code = w
        rec = await annotate_turn(ctx, key, s, i)
        return type(rec)(**rec.model_dump(), expert=code)

    try:
        await map_items(ctx, st, work, one, "expert_annotations.jsonl", label="annotator vs experts")
    except TooManyFailures as e:
        ctx.log(f"[yellow]annotator vs experts: {e}[/yellow]")
    keys = {k for k, _ in work}
    done = [d for d in st.read_dicts("expert_annotations.jsonl") if d["id"] in keys]
    gold = [d["expert"] for d in done]
    pred = [to_code(d["annotation"].get("techniques") or [], mapping) for d in done]
    return {"turns": len(work), "labelled": len(done), **agreement(gold, pred)}


__all__ = ["ExpertRating", "ExpertTranscript", "agreement", "analyze", "annotator_agreement", "check", "load_annomi",
           "locate", "matched_pairs", "to_code"]
