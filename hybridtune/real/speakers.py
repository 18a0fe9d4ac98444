"""Counselor or client, from the words alone: a learned head on sentence embeddings, decoded by a two-state HMM.

Automatic captions carry no names and usually no `>>` marks, and their fixed-length lines
cut across speaker changes. So roles are decided per *unit* (a caption line, split again at
`>>` marks and sentence ends), never per pre-built turn:

- emission: a logistic head over the shipped sentence embedder (all-MiniLM-L6-v2, see
  hybridtune/embed.py) gives P(counselor | unit, its neighbours' embeddings, its position);
- transition: a second logistic head gives P(speaker changes | the words at the boundary):
  both units, their elementwise product, how the first ends and the second starts. Marks and
  pauses are evidence when present, never a requirement: a `>>` is a change; the share of
  changes the file marks (marks over the changes the words expect) says how far to trust the
  absence of a mark, so a complete-mark file is decoded as its marks say;
- decoding: forward-backward gives each unit's posterior, Viterbi the role sequence;
  consecutive units of one role become one turn. The session confidence is the
  word-weighted mean posterior of the chosen roles: doubtful sessions go to quarantine.

No model call. Both heads ship in `speaker_head.json` (a few KB) with their provenance;
they are trained on AnnoMI's therapist and client utterances (public domain), turned into
captions the way a video platform writes them (`simulate_captions`):

    .venv/bin/python -m hybridtune.real.speakers train ../shared/data/annomi/AnnoMI-simple.csv

`bench/real_attribution.py` measures accuracy with cross-validation by transcript.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import difflib
import functools
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cues import caption_pieces, parse_cues

HEAD_PATH = Path(__file__).with_name("speaker_head.json")
MARK = ">>"
MARK_SWITCH = 0.999  # P(speaker changes) at a `>>` mark
C_EMIT, C_PAIR = 1.0, 1.0  # L2 strengths: sklearn's default, not tuned (no CPU time for inner folds)
SENT_END = re.compile(r"(?<=[.?!])\s+(?=\S)")


@dataclass
class Unit:
    """One piece of caption text in reading order, with the evidence at its left boundary."""

    text: str
    line: int = 0
    start_s: float = 0.0
    mark: bool = False          # a `>>` mark opens this unit
    new_line: bool = True       # it starts a caption line (False: split from inside one)
    role: str | None = None     # 'assistant' (counselor) | 'user' (client), once decoded
    p_counselor: float = 0.5    # posterior after decoding


def split_units(pieces: list[tuple[float, str, int]]) -> list[Unit]:
    """Caption pieces (start, text, line) -> units split at `>>` marks and sentence ends."""
    units: list[Unit] = []
    pending = False  # a `>>` that ended the previous line (fixed-length lines cut anywhere) marks the next unit
    for start, text, line in pieces:
        first = True
        for k, part in enumerate(text.split(MARK)):
            pending = pending or k > 0
            for sent in SENT_END.split(part.strip()):
                if not sent.strip():
                    continue
                units.append(Unit(text=sent.strip(), line=line, start_s=start, mark=pending, new_line=first))
                first = pending = False
    return units


# ---- features -------------------------------------------------------------------------------

YOU = re.compile(r"\b(you|your|you're|you've|yourself)\b", re.I)
ME = re.compile(r"\b(I|I'm|I've|I'd|my|me|myself)\b")
ENDS_STOP, ENDS_ANY = re.compile(r"[.!]$"), re.compile(r"[.?!]$")
PAUSE_LOGIT = 2.0  # a pause raises the switch odds ~7x; fixed, since the training captions have even timing


def cue_features(texts: list[str]) -> np.ndarray:
    """A few surface cues beside the embedding: question mark, 'you' rate, 'I' rate, length."""
    rows = []
    for t in texts:
        n = max(len(t.split()), 1)
        rows.append([t.count("?") > 0, len(YOU.findall(t)) / n, len(ME.findall(t)) / n, math.log1p(n) / 3])
    return np.asarray(rows, dtype=np.float32)


def unit_features(texts: list[str]) -> np.ndarray:
    """Per unit: the sentence embedding (384) and the cues (4); both heads read these."""
    from ..embed import embed

    return np.hstack([embed(texts), cue_features(texts)])


def emission_features(U: np.ndarray) -> np.ndarray:
    """The unit's own features, its neighbours' embeddings and its position in the session."""
    n, d = len(U), EMB_DIM
    Z = np.zeros((1, d), dtype=np.float32)
    E = U[:, :d]
    pos = np.asarray([[i == 0, i / max(n - 1, 1)] for i in range(n)], dtype=np.float32).reshape(n, 2)
    return np.hstack([U, pos, np.vstack([Z, E[:-1]])[:n], np.vstack([E[1:], Z])[:n]])


def pair_features(units: list[Unit], U: np.ndarray) -> np.ndarray:
    """Evidence from the words at each boundary (row i-1 = between unit i-1 and unit i): both units'
    features, their elementwise product (does the reply answer the question?) and the edge:
    how the first unit ends, whether the second starts in lower case, whether it opens a line."""
    E = U[:, :EMB_DIM]
    edge = np.asarray([[bool(ENDS_STOP.search(a.text)), a.text.endswith("?"), not ENDS_ANY.search(a.text),
                        b.text[:1].islower(), b.new_line] for a, b in zip(units, units[1:])], dtype=np.float32)
    return np.hstack([U[:-1], U[1:], E[:-1] * E[1:], edge.reshape(-1, 5)])


def pauses(units: list[Unit], pause_s: float) -> np.ndarray:
    """True at boundary i when a pause precedes unit i (captions on a new line wait for a longer gap)."""
    out = [False]
    for prev, u in zip(units, units[1:]):
        gap = max(u.start_s - prev.start_s, 0.0)
        out.append(gap >= pause_s and not u.new_line or gap >= 2 * pause_s)
    return np.asarray(out)


def marks_kept(p_words: np.ndarray, marked: np.ndarray) -> float:
    """Share of the speaker changes that carry a `>>` mark: marks over the changes the words expect.
    Complete-mark files come out near 1, files with marks dropped lower, files without marks 0."""
    if not marked.any():
        return 0.0
    return float(min(1.0, marked.sum() / max(p_words[1:].sum(), 1.0)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


# ---- the shipped heads ----------------------------------------------------------------------

EMB_DIM = 384
EMIT_DIM = EMB_DIM + 4 + 2 + 2 * EMB_DIM
PAIR_DIM = 2 * (EMB_DIM + 4) + EMB_DIM + 5


@dataclass
class SpeakerHead:
    emit_w: np.ndarray          # counselor-vs-client logistic head over emission_features
    emit_b: float
    pair_w: np.ndarray          # speaker-change logistic head over pair_features (words only)
    pair_b: float
    prior: float                # share of counselor units in training (the emission's prior)
    meta: dict

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> SpeakerHead:
        d = json.loads(path.read_text(encoding="utf-8"))
        return cls(np.asarray(d["emit_w"], dtype=np.float32), d["emit_b"], np.asarray(d["pair_w"], dtype=np.float32),
                   d["pair_b"], d["prior"], d["meta"])

    def save(self, path: Path = HEAD_PATH) -> None:
        d = {"meta": self.meta, "prior": round(self.prior, 4), "emit_b": round(float(self.emit_b), 4),
             "emit_w": [round(float(x), 4) for x in self.emit_w], "pair_b": round(float(self.pair_b), 4),
             "pair_w": [round(float(x), 4) for x in self.pair_w]}
        path.write_text(json.dumps(d, separators=(",", ":")) + "\n", encoding="utf-8")

    def p_counselor(self, texts: list[str], U: np.ndarray | None = None) -> np.ndarray:
        U = unit_features(texts) if U is None else U
        return _sigmoid(emission_features(U) @ self.emit_w + self.emit_b)

    def p_switch(self, units: list[Unit], pause_s: float, U: np.ndarray | None = None) -> np.ndarray:
        """P(speaker changes) at each boundary (entry i: before unit i; entry 0 unused)."""
        U = unit_features([u.text for u in units]) if U is None else U
        z = np.concatenate([[0.0], pair_features(units, U) @ self.pair_w + self.pair_b]) if len(units) > 1 else np.zeros(1)
        p = _sigmoid(z + PAUSE_LOGIT * pauses(units, pause_s))
        marked = np.asarray([u.mark for u in units])
        # marks are dropped at random: with a share q of the changes marked, an unmarked boundary
        # changes speaker with p(1-q)/(1-pq); a complete-mark file (q ~ 1) leaves changes to the marks
        q = marks_kept(p, marked)
        unmarked = p * (1 - q) / np.maximum(1 - p * q, 1e-6)
        return np.where(marked, MARK_SWITCH, np.clip(unmarked, 1e-3, 1.0))


@functools.lru_cache(maxsize=1)
def default_head() -> SpeakerHead:
    return SpeakerHead.load()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


# ---- decoding -------------------------------------------------------------------------------

def decode(p_c: np.ndarray, p_sw: np.ndarray, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi path (1 = counselor) and forward-backward posteriors P(counselor) per unit.

    Emissions are scaled likelihoods P(state | text) / P(state); p_sw[i] is the chance that
    the speaker changes between unit i-1 and i.
    """
    n = len(p_c)
    p = np.clip(p_c, 1e-4, 1 - 1e-4)
    e = np.stack([(1 - p) / (1 - prior), p / prior], axis=1)  # [client, counselor]
    sw = np.clip(p_sw, 1e-4, 1 - 1e-4)
    T = [np.array([[1 - s, s], [s, 1 - s]]) for s in sw]
    # forward-backward, normalised per step
    fwd = np.zeros((n, 2))
    fwd[0] = 0.5 * e[0] / (0.5 * e[0]).sum()
    for i in range(1, n):
        f = (fwd[i - 1] @ T[i]) * e[i]
        fwd[i] = f / f.sum()
    bwd = np.ones((n, 2))
    for i in range(n - 2, -1, -1):
        b = T[i + 1] @ (e[i + 1] * bwd[i + 1])
        bwd[i] = b / b.sum()
    post = fwd * bwd
    post = post[:, 1] / post.sum(axis=1)
    # Viterbi in log space
    le, best = np.log(e), np.log(0.5 * e[0])
    back = np.zeros((n, 2), dtype=int)
    for i in range(1, n):
        cand = best[:, None] + np.log(T[i])          # [prev, cur]
        back[i] = cand.argmax(axis=0)
        best = cand.max(axis=0) + le[i]
    path = np.zeros(n, dtype=int)
    path[-1] = int(best.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path, post


def attribute_units(units: list[Unit], pause_s: float = 1.5, head: SpeakerHead | None = None) -> float:
    """Set each unit's role and posterior; return the session confidence in [0, 1]."""
    if not units:
        return 0.0
    head = head or default_head()
    U = unit_features([u.text for u in units])
    path, post = decode(head.p_counselor([], U), head.p_switch(units, pause_s, U), head.prior)
    weights, agree = [], []
    for u, st, pc in zip(units, path, post, strict=True):
        u.role, u.p_counselor = ("assistant" if st else "user"), float(pc)
        weights.append(len(u.text.split()))
        agree.append(pc if st else 1 - pc)
    # never 1.0: posteriors only approach certainty, so min_confidence=1.0 sends every session to review
    return min(round(float(np.average(agree, weights=weights)), 3), 0.999)


# ---- captions as a video platform writes them (training data and the benchmark) --------------

def simulate_captions(utts: list[tuple[str, str]], rng: random.Random, *, mark_p: float, chunk_words: int = 7
                      ) -> tuple[str, list[tuple[str, int]]]:
    """WebVTT of a transcript as automatic captions: fixed-length lines cut across turns, rolling
    duplicates, `[Music]`, no names, even timing (no pause evidence), a `>>` at a speaker
    change kept with probability `mark_p`. Returns (vtt, [(word, utterance index)])."""
    words: list[tuple[str, int]] = []
    prev_role = None
    for i, (role, text) in enumerate(utts):
        ws = text.split()
        if ws and prev_role is not None and role != prev_role and rng.random() < mark_p:
            ws = [MARK, *ws]
        prev_role = role if ws else prev_role
        words += [(w, i) for w in ws]

    def ts(t: float) -> str:
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"

    out, t, prev = ["WEBVTT", "", f"{ts(0)} --> {ts(2)}", "[Music]", ""], 2.0, ""
    for k in range(0, len(words), chunk_words):
        line = " ".join(w for w, _ in words[k:k + chunk_words])
        out += [f"{ts(t)} --> {ts(t + 2)}", f"{prev}\n{line}" if prev else line, ""]
        prev, t = line, t + 2
    return "\n".join(out) + "\n", [(w, i) for w, i in words if w != MARK]


def annomi_transcripts(path: Path) -> dict[str, list[tuple[str, str]]]:
    """AnnoMI-simple.csv -> {transcript id: [(therapist|client, utterance)]} in order."""
    by: dict[str, list[tuple[str, str]]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            by.setdefault(r["transcript_id"], []).append((r["interlocutor"], r["utterance_text"]))
    return by


def labelled_units(utts: list[tuple[str, str]], rng: random.Random, mark_p: float, pause_s: float = 1.5
                   ) -> tuple[list[Unit], np.ndarray]:
    """Units of one simulated caption file and their true role (1 = counselor, by word majority)."""
    vtt, truth = simulate_captions(utts, rng, mark_p=mark_p)
    units = split_units(caption_pieces(parse_cues(vtt)))
    word_unit = [(w, k) for k, u in enumerate(units) for w in u.text.split()]
    votes = np.zeros((len(units), 2))
    sm = difflib.SequenceMatcher(a=[w for w, _ in truth], b=[w for w, _ in word_unit], autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for j in range(n):
            votes[word_unit[b + j][1], int(utts[truth[a + j][1]][0] == "therapist")] += 1
    labels = (votes[:, 1] >= votes[:, 0]).astype(int)
    return units, np.asarray(labels)


def fit(transcripts: dict[str, list[tuple[str, str]]], ids: list[str], seed: int = 0,
        c_emit: float = C_EMIT, c_pair: float = C_PAIR) -> SpeakerHead:
    """Train both heads on the given transcripts' captions without marks (marks are handled in p_switch)."""
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(seed)
    Xe, y, Xp, sw = [], [], [], []
    for tid in ids:
        units, lab = labelled_units(transcripts[tid], rng, 0.0)
        U = unit_features([u.text for u in units])
        Xe.append(emission_features(U))
        y += list(lab)
        if len(units) > 1:
            Xp.append(pair_features(units, U))
            sw += list((lab[1:] != lab[:-1]).astype(int))
    emit = LogisticRegression(C=c_emit, max_iter=3000).fit(np.vstack(Xe), y)
    pair = LogisticRegression(C=c_pair, max_iter=3000).fit(np.vstack(Xp), sw)
    return SpeakerHead(emit.coef_[0].astype(np.float32), float(emit.intercept_[0]), pair.coef_[0].astype(np.float32),
                       float(pair.intercept_[0]), float(np.mean(y)),
                       {"units": len(y), "boundaries": len(sw), "transcripts": len(ids), "C_emit": c_emit, "C_pair": c_pair})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="train the shipped speaker head on AnnoMI (public domain)")
    ap.add_argument("cmd", choices=["train"])
    ap.add_argument("annomi_csv", type=Path, help="AnnoMI-simple.csv (uccollab/AnnoMI @ 4293664)")
    ap.add_argument("--out", type=Path, default=HEAD_PATH)
    a = ap.parse_args(argv)
    by = annomi_transcripts(a.annomi_csv)
    head = fit(by, sorted(by, key=int))
    head.meta.update({
        "what": "counselor/client emission head (all-MiniLM-L6-v2 embedding + 4 cue features) and a speaker-change "
                "transition head over boundary evidence; see hybridtune/real/speakers.py",
        "data": "AnnoMI-simple.csv, uccollab/AnnoMI @ 4293664 (public domain); all transcripts in the file",
        "data_sha256": hashlib.sha256(a.annomi_csv.read_bytes()).hexdigest(),
        "command": "python -m hybridtune.real.speakers train ../shared/data/annomi/AnnoMI-simple.csv",
        "trained": dt.date.today().isoformat(),
        "accuracy": "see docs/benchmarks.md (bench/real_attribution.py, cross-validated by transcript)",
    })
    head.save(a.out)
    print(f"wrote {a.out}: {head.meta['units']} units, {head.meta['boundaries']} boundaries")


if __name__ == "__main__":
    main()
