"""Speaker attribution on captions without names, from AnnoMI transcripts, cross-validated by transcript.

Each AnnoMI transcript becomes WebVTT the way a video platform writes automatic captions
(`hybridtune.real.speakers.simulate_captions`): fixed 7-word lines cut across turns, rolling
duplicates, `[Music]`, no names, even timing (so no pause evidence), and a `>>` at each
speaker change kept with probability 1 (all marks), 0.5 (marks randomly dropped) or 0 (none).
The shipped method (a small convolutional head over sentence embeddings + two-state HMM, no
model call) is trained on the other folds' transcripts and scored on the held-out fold's, so
training and evaluation transcripts are disjoint; its three settings (epochs, switch_scale, emit_scale) are
chosen by `fit` of `scripts/speaker_fit.py` on an inner split of the training transcripts only. Accuracy is per
original utterance (majority role of its words, aligned with difflib) against AnnoMI's therapist/client labels.

Baseline in the same run: turns rebuilt from `>>` marks (or 1.5 s pauses without marks) with
strict alternation from the counselor. Also reported: the sessions under the quarantine
threshold (`real.attribution.min_confidence`; the confidence is the session's expected accuracy,
calibrated on the inner split), the accuracy of the kept and the quarantined ones, and how well
the confidence ranks sessions (Spearman).

    .venv/bin/python bench/real_attribution.py [--transcripts 113] [--folds 5] [--marks all half none]
        [--embed-cache FILE] [--cost-transcripts 10]
"""
from __future__ import annotations

import argparse
import atexit
import difflib
import pickle
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import Result, data_file, record
from scipy.stats import spearmanr

import hybridtune.embed as E
from scripts import speaker_fit as F
from hybridtune.real import speakers as S
from hybridtune.real.captions import caption_pieces, parse_cues, rebuild_turns, units_to_turns
from hybridtune.real.config import AttributionConfig

CASES = {"all marks": 1.0, "marks randomly dropped (p=0.5)": 0.5, "no marks": 0.0}
SHORT = dict(zip(("all", "half", "none"), CASES))  # --marks none reruns only the target case (same captions)


def memo_embed(cache: Path | None) -> None:
    """Embed each distinct text once across folds and cases (the embedder is deterministic);
    with --embed-cache the vectors persist between runs, so a rerun is cheap numpy."""
    raw = E.embed
    seen = pickle.loads(cache.read_bytes()) if cache and cache.is_file() else {}
    if cache:
        atexit.register(lambda: cache.write_bytes(pickle.dumps(seen)))

    def embed(texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in seen]
        if todo:
            seen.update(zip(todo, raw(todo), strict=True))
        return np.stack([seen[t] for t in texts]) if texts else raw([])

    E.embed = embed


def utterance_accuracy(utts, turns, truth) -> float:
    pred = [(w, t.role) for t in turns for w in t.text.split()]
    sm = difflib.SequenceMatcher(a=[w for w, _ in truth], b=[w for w, _ in pred], autojunk=False)
    votes: dict[int, Counter] = {}
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            votes.setdefault(truth[a + k][1], Counter())[pred[b + k][1]] += 1
    gold = ["assistant" if r == "therapist" else "user" for r, _ in utts]
    return sum(1 for i, g in enumerate(gold) if i in votes and votes[i].most_common(1)[0][0] == g) / len(gold)


def alternation(vtt: str):
    turns, _ = rebuild_turns(caption_pieces(parse_cues(vtt)), AttributionConfig().pause_s)
    for k, t in enumerate(turns):
        t.role = "assistant" if k % 2 == 0 else "user"
    return turns


def cost_probe(head: S.SpeakerHead, transcripts: list, raw_embed) -> tuple[int, float]:
    """Units and seconds to attribute these transcripts' captions with the embedder uncached."""
    memo, E.embed = E.embed, raw_embed
    units = [S.split_units(caption_pieces(parse_cues(S.simulate_captions(u, random.Random(0), mark_p=0.0)[0])))
             for u in transcripts]
    raw_embed(["warm up"])  # the model is loaded once per process; that is not per-unit cost
    t0 = time.time()
    for us in units:
        S.attribute_units(us, AttributionConfig().pause_s, head=head)
    E.embed = memo
    return sum(map(len, units)), time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcripts", type=int, default=113)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--embed-cache", type=Path, help="pickle of text -> vector kept between runs (any path; it only saves time)")
    ap.add_argument("--marks", nargs="+", choices=list(SHORT), default=list(SHORT), help="cases to run (default: all three)")
    ap.add_argument("--seed", type=int, default=0, help="another transcript-to-fold split, training seed and caption "
                    "draw, to see how much the figures move (recorded as real_attribution_seedN)")
    ap.add_argument("--cost-transcripts", type=int, default=10, help="transcripts for the uncached cost row (0: skip it)")
    a = ap.parse_args()
    cases = {SHORT[m]: CASES[SHORT[m]] for m in SHORT if m in a.marks}
    raw_embed = E.embed
    memo_embed(a.embed_cache)
    by = S.annomi_transcripts(data_file("annomi", "AnnoMI-simple.csv"))
    ids = sorted(by, key=int)[: a.transcripts]
    random.Random(a.seed).shuffle(ids)
    folds = [ids[k:: a.folds] for k in range(a.folds)]
    min_conf = AttributionConfig().min_confidence
    t_start = time.time()
    rows: dict[str, list[tuple[int, float, float, float]]] = {c: [] for c in cases}  # (n utts, acc, base, conf)
    data = F.examples(by, ids)  # captions without marks, labelled: every fold trains on its share of these
    marked = F.examples(by, ids, 1.0)  # with every mark: the inner splits check that marks still win
    half = F.examples(by, ids, 0.5)  # with half the marks: the session confidence is calibrated on all three
    chosen = []
    for k, test in enumerate(folds):
        # settings and the confidence calibration come from an inner split of this fold's training transcripts only
        head = F.fit(by, [t for f in folds if f is not test for t in f], seed=k + 1000 * a.seed, data=data, marked=marked, half=half)
        chosen.append(head.meta["chosen"])
        rng = random.Random(100 + k + 1000 * a.seed)
        for case, mark_p in cases.items():
            for tid in test:
                utts = by[tid]
                vtt, truth = S.simulate_captions(utts, rng, mark_p=mark_p)
                units = S.split_units(caption_pieces(parse_cues(vtt)))
                conf = S.attribute_units(units, AttributionConfig().pause_s, head=head)
                acc = utterance_accuracy(utts, units_to_turns(units), truth)
                rows[case].append((len(utts), acc, utterance_accuracy(utts, alternation(vtt), truth), conf))
        print(f"fold {k + 1}/{a.folds}:", {c: round(float(np.average([x[1] for x in r], weights=[x[0] for x in r])), 3)
                                           for c, r in rows.items()}, chosen[-1], f"{time.time() - t_start:.0f}s", flush=True)
    # the embedding cache only saves time (same vectors), so the command that reproduces the figures leaves it out
    command = f".venv/bin/python bench/real_attribution.py --transcripts {a.transcripts} --folds {a.folds}" + (
        f" --marks {' '.join(a.marks)}" if len(cases) < len(CASES) else "") + (f" --seed {a.seed}" if a.seed else "")
    results = []
    settings = ", ".join(f"({c['epochs']}, {c['averaged_checkpoints']}, {c['switch_scale']}, {c['emit_scale']})" for c in chosen)
    for case, r in rows.items():
        n = np.array([x[0] for x in r])
        acc, base, conf = (np.array([x[i] for x in r]) for i in (1, 2, 3))
        A, B = float(np.average(acc, weights=n)), float(np.average(base, weights=n))
        kept = conf >= min_conf
        A_kept, A_out = (float(np.average(acc[m], weights=n[m])) if m.any() else float("nan") for m in (kept, ~kept))
        rho = float(spearmanr(conf, acc).statistic)
        results.append(Result(
            benchmark=f"speaker attribution, {case}: captions from {len(r)} AnnoMI transcripts ({int(n.sum())} "
                      f"utterances), {a.folds}-fold cross-validation by transcript, no model call",
            figure=f"utterance accuracy {A:.3f}", baseline=f"mark/pause turns with strict alternation {B:.3f}",
            ratio=round(A / B, 3), target=">= 0.85" if CASES[case] < 1 else "reported", met=A >= 0.85 if CASES[case] < 1 else None,
            command=command,
            notes=f"{int((~kept).sum())} of {len(r)} sessions under min_confidence={min_conf} (quarantined): accuracy "
                  f"{A_out:.3f} quarantined vs {A_kept:.3f} kept; session confidence (calibrated expected accuracy) "
                  f"mean {np.mean(conf):.3f} vs mean session accuracy {np.mean(acc):.3f}, Spearman {rho:.2f}; "
                  f"worst transcript {acc.min():.3f}; per fold (epochs, averaged checkpoints, switch_scale, emit_scale) "
                  f"chosen on inner splits: {settings}",
            extra={"kept_sessions": int(kept.sum()), "accuracy_kept": round(A_kept, 4), "accuracy_quarantined": round(A_out, 4),
                   "confidence_spearman": round(rho, 3), "worst": round(float(acc.min()), 4), "chosen": chosen,
                   "sessions": [{"utterances": int(x[0]), "accuracy": round(x[1], 4), "confidence": x[3]} for x in r]},
        ))
    if a.cost_transcripts:
        n_units, secs = cost_probe(head, [by[t] for t in folds[-1][:a.cost_transcripts]], raw_embed)
        results.append(Result(
            benchmark="attribution cost: units decoded per second (uncached embedding + both heads + HMM), no marks, "
                      f"{a.cost_transcripts} transcripts of the last fold",
            figure=f"{n_units / secs:.0f} units/s over {n_units} units", baseline="-",
            ratio=None, target="reported", met=None, command=command))
    record("real_attribution" + (f"_seed{a.seed}" if a.seed else ""), results)


if __name__ == "__main__":
    main()
