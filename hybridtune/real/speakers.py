"""Counselor or client, from the words alone: a learned head on sentence embeddings, decoded by a two-state HMM.

Automatic captions carry no names and usually no `>>` marks, and their fixed-length lines
cut across speaker changes. So roles are decided per *unit* (a caption line, split again at
`>>` marks, sentence ends and interruption dashes), never per pre-built turn:

- the head (`SpeakerHead`, numpy): residual dilated convolutions over the unit sequence, each
  unit described by its sentence embedding (all-MiniLM-L6-v2, see hybridtune/embed.py), a few
  cues and its left boundary (how the previous unit ends, how this one starts, a new caption
  line). It sees ~15 units either side and gives two logits per unit: 'counselor', and 'the
  speaker changes before this unit';
- marks and pauses are evidence when present, never a requirement: a `>>` is a change; the
  share of changes the file marks (marks over the changes the words expect) says how far to
  trust the absence of a mark, so a complete-mark file is decoded as its marks say;
- decoding: forward-backward gives each unit's posterior, Viterbi the role sequence;
  consecutive units of one role become one turn. The session confidence is the session's
  expected utterance accuracy: its word-weighted mean posterior of the chosen roles (which ranks
  sessions well but is overconfident) mapped by a line fitted on held-out transcripts' sessions
  (`scripts/speaker_fit.py`: `calibrate`); sessions under `real.attribution.min_confidence` go to quarantine.

No model call. The head ships in `speaker_head.json` (float16 weights, ~200 KB) with its
provenance; it is trained on AnnoMI's therapist and client utterances (public domain), turned
into captions the way a video platform writes them (`simulate_captions`), by
`scripts/speaker_fit.py` (an offline training script, not part of the package).
`bench/real_attribution.py` measures accuracy with cross-validation by transcript.
"""
from __future__ import annotations

import base64
import csv
import difflib
import functools
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
# a unit ends at a sentence end and at an interruption dash ("on average- Mm-hmm. -and you usually"):
# transcripts cut an interrupted turn with a dash, so a split there lets a back-channel stand alone
# (oracle unit roles on AnnoMI captions: 0.933 of utterances at sentence ends only, 0.995 with dashes)
SENT_END = re.compile(r"(?<=[.?!])\s+(?=\S)|(?<=\S[-—])\s+(?=\S)|\s+(?=[-—]+\w)")


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
DASH_END, DASH_START = re.compile(r"\S[-\u2014]$"), re.compile(r"^[-\u2014]")
PAUSE_LOGIT = 2.0  # a pause raises the switch odds ~7x; fixed, since the training captions have even timing
EMB_DIM, CUE_DIM, EDGE_DIM = 384, 4, 9
FEAT_DIM = EMB_DIM + CUE_DIM + EDGE_DIM


def cue_features(texts: list[str]) -> np.ndarray:
    """A few surface cues beside the embedding: question mark, 'you' rate, 'I' rate, length."""
    rows = []
    for t in texts:
        n = max(len(t.split()), 1)
        rows.append([t.count("?") > 0, len(YOU.findall(t)) / n, len(ME.findall(t)) / n, math.log1p(n) / 3])
    return np.asarray(rows, dtype=np.float32).reshape(-1, CUE_DIM)


def unit_features(texts: list[str]) -> np.ndarray:
    """Per unit: the sentence embedding (384) and the cues (4); the embedding is the costly part."""
    from ..embed import embed

    return np.hstack([embed(texts), cue_features(texts)])


def edge_features(units: list[Unit]) -> np.ndarray:
    """Per unit, the evidence at its left boundary: how the previous unit ends (full stop, question,
    no end, interruption dash), how this one starts (lower case, dash), whether it opens a caption
    line, and where it sits in the session (first unit; relative position)."""
    n, rows = len(units), []
    for i, b in enumerate(units):
        a = units[i - 1].text if i else ""
        rows.append([i == 0, bool(ENDS_STOP.search(a)), a.endswith("?"), bool(a) and not ENDS_ANY.search(a),
                     b.text[:1].islower(), b.new_line, bool(DASH_END.search(a)), bool(DASH_START.search(b.text)),
                     i / max(n - 1, 1)])
    return np.asarray(rows, dtype=np.float32).reshape(n, EDGE_DIM)


def sequence_features(units: list[Unit], U: np.ndarray | None = None) -> np.ndarray:
    """(n, FEAT_DIM): unit_features beside edge_features; the head reads its neighbours through its convolutions."""
    U = unit_features([u.text for u in units]) if U is None else U
    return np.hstack([U, edge_features(units)]).astype(np.float32)


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


# ---- the shipped head -----------------------------------------------------------------------

DILATIONS = (1, 2, 4, 8)  # residual 3-wide convolutions: each unit sees ~15 units either side
HIDDEN = 64


@dataclass
class SpeakerHead:
    """A small convolutional net over the unit sequence with two outputs per unit: the logit of
    'counselor' and the logit of 'the speaker changes before this unit' (words only). Weights are
    stored as float16 in base64 inside the JSON; inference is numpy (torch only trains it)."""

    weights: dict[str, np.ndarray]  # in_w (FEAT_DIM, H), in_b, conv{k}_w (H, H, 3), conv{k}_b, emit_w (H,), emit_b, pair_w (2H,), pair_b
    prior: float                    # share of counselor units in training (the emission's prior)
    switch_scale: float             # sharpening of the words' switch logit, chosen on inner folds
    emit_scale: float               # tempering of the counselor evidence, chosen on inner folds: neighbouring
                                    # units share context, so their logits are not independent evidence
    meta: dict
    calibration: dict | None = None  # session_score -> expected utterance accuracy ("intercept", "slope"), fitted on inner folds

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> SpeakerHead:
        d = json.loads(path.read_text(encoding="utf-8"))
        w = {k: np.frombuffer(base64.b64decode(v["b64"]), dtype=np.float16).astype(np.float32).reshape(v["shape"])
             for k, v in d["weights"].items()}
        return cls(w, d["prior"], d["switch_scale"], d["emit_scale"], d["meta"], d.get("calibration"))

    def save(self, path: Path = HEAD_PATH) -> None:
        w = {k: {"shape": list(v.shape), "b64": base64.b64encode(np.asarray(v, np.float16).tobytes()).decode()}
             for k, v in self.weights.items()}
        d = {"meta": self.meta, "prior": round(self.prior, 4), "switch_scale": self.switch_scale,
             "emit_scale": self.emit_scale, "calibration": self.calibration, "weights": w}
        path.write_text(json.dumps(d, indent=0) + "\n", encoding="utf-8")

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sequence features (n, FEAT_DIM) -> (counselor logit, switch logit) per unit; switch entry 0 is unused."""
        w = self.weights
        z = np.maximum(X @ w["in_w"] + w["in_b"], 0.0)
        n = len(z)
        for k, dl in enumerate(DILATIONS):
            W, pad = w[f"conv{k}_w"], np.zeros((dl, z.shape[1]), np.float32)
            zp = np.vstack([pad, z, pad])
            out = w[f"conv{k}_b"] + sum(zp[j * dl: j * dl + n] @ W[:, :, j].T for j in range(3))
            z = z + np.maximum(out, 0.0)
        prev = np.vstack([np.zeros((1, z.shape[1]), np.float32), z[:-1]])
        return z @ w["emit_w"] + w["emit_b"], np.hstack([prev, z]) @ w["pair_w"] + w["pair_b"]

    def confidence(self, score: float) -> float:
        """A session's expected share of utterances with the right role, from its `session_score` (the raw
        score without a calibration). Never 1.0: min_confidence=1.0 must send every session to review."""
        c = score if not self.calibration else self.calibration["intercept"] + self.calibration["slope"] * score
        return min(max(round(c, 3), 0.0), 0.999)

    def p_counselor(self, texts: list[str], U: np.ndarray | None = None) -> np.ndarray:
        return _sigmoid(self.forward(sequence_features([Unit(t) for t in texts], U))[0])

    def emission(self, z_counselor: np.ndarray) -> np.ndarray:
        """P(counselor) for the decoder: the head's log-odds against the prior, tempered by emit_scale."""
        base = math.log(self.prior / (1 - self.prior))
        return _sigmoid(base + self.emit_scale * (z_counselor - base))

    def p_switch(self, units: list[Unit], pause_s: float, U: np.ndarray | None = None,
                 z_words: np.ndarray | None = None) -> np.ndarray:
        """P(speaker changes) at each boundary (entry i: before unit i; entry 0 unused)."""
        z = self.forward(sequence_features(units, U))[1] if z_words is None else z_words
        p = _sigmoid(self.switch_scale * z + PAUSE_LOGIT * pauses(units, pause_s))
        p[0] = 0.0
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
    the speaker changes between unit i-1 and i. Two states, so each step is written out on
    Python floats: ~20x faster than 2x2 numpy products per unit (tuning decodes thousands of sessions).
    """
    n = len(p_c)
    p = np.clip(p_c, 1e-4, 1 - 1e-4)
    e0, e1 = ((1 - p) / (1 - prior)).tolist(), (p / prior).tolist()  # [client, counselor]
    sw_a = np.clip(p_sw, 1e-4, 1 - 1e-4)
    sw = sw_a.tolist()
    # forward-backward, normalised per step
    f0, f1 = 0.5 * e0[0], 0.5 * e1[0]
    F0, F1 = [f0 / (f0 + f1)], [f1 / (f0 + f1)]
    for i in range(1, n):
        a, b, s = F0[-1], F1[-1], sw[i]
        f0, f1 = (a * (1 - s) + b * s) * e0[i], (a * s + b * (1 - s)) * e1[i]
        F0.append(f0 / (f0 + f1))
        F1.append(f1 / (f0 + f1))
    B0, B1 = [1.0] * n, [1.0] * n
    for i in range(n - 2, -1, -1):
        s, x0, x1 = sw[i + 1], e0[i + 1] * B0[i + 1], e1[i + 1] * B1[i + 1]
        b0, b1 = (1 - s) * x0 + s * x1, s * x0 + (1 - s) * x1
        B0[i], B1[i] = b0 / (b0 + b1), b1 / (b0 + b1)
    q0, q1 = np.asarray(F0) * np.asarray(B0), np.asarray(F1) * np.asarray(B1)
    post = q1 / (q0 + q1)
    # Viterbi in log space; ties go to the client state
    l0, l1 = np.log(e0).tolist(), np.log(e1).tolist()
    ls, lk = np.log(sw_a).tolist(), np.log(1 - sw_a).tolist()
    v0, v1 = math.log(0.5 * e0[0]), math.log(0.5 * e1[0])
    back = [(0, 0)] * n
    for i in range(1, n):
        a0, a1, c0, c1 = v0 + lk[i], v1 + ls[i], v0 + ls[i], v1 + lk[i]  # into client from (client, counselor), into counselor
        back[i] = (int(a1 > a0), int(c1 > c0))
        v0, v1 = max(a0, a1) + l0[i], max(c0, c1) + l1[i]
    path = [0] * n
    path[-1] = int(v1 > v0)
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i][path[i]]
    return np.asarray(path), post


SESSION_SCORE = "word-weighted mean posterior of the decoded roles"


def session_score(path: np.ndarray, post: np.ndarray, units: list[Unit]) -> float:
    """How sure the decoder is of a session: the word-weighted mean posterior of the decoded roles."""
    agree = np.where(path == 1, post, 1 - post)
    return float(np.average(agree, weights=[max(len(u.text.split()), 1) for u in units]))


def attribute_units(units: list[Unit], pause_s: float = 1.5, head: SpeakerHead | None = None) -> float:
    """Set each unit's role and posterior; return the session confidence: its expected accuracy, in [0, 1)."""
    if not units:
        return 0.0
    head = head or default_head()
    ze, zs = head.forward(sequence_features(units))
    path, post = decode(head.emission(ze), head.p_switch(units, pause_s, z_words=zs), head.prior)
    for u, st, pc in zip(units, path, post, strict=True):
        u.role, u.p_counselor = ("assistant" if st else "user"), float(pc)
    return head.confidence(session_score(path, post, units))


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
                   ) -> tuple[list[Unit], np.ndarray, np.ndarray]:
    """Units of one simulated caption file, their true role (1 = counselor, by word majority) and the
    (utterance, unit) pair of each caption word aligned to the transcript (for `utterance_accuracy`)."""
    vtt, truth = simulate_captions(utts, rng, mark_p=mark_p)
    units = split_units(caption_pieces(parse_cues(vtt)))
    word_unit = [(w, k) for k, u in enumerate(units) for w in u.text.split()]
    sm = difflib.SequenceMatcher(a=[w for w, _ in truth], b=[w for w, _ in word_unit], autojunk=False)
    pairs = np.array([(truth[a + j][1], word_unit[b + j][1]) for a, b, n in sm.get_matching_blocks() for j in range(n)],
                     dtype=int).reshape(-1, 2)
    votes = np.zeros((len(units), 2))
    np.add.at(votes, (pairs[:, 1], [int(utts[u][0] == "therapist") for u in pairs[:, 0]]), 1)
    return units, (votes[:, 1] >= votes[:, 0]).astype(int), pairs


def utterance_accuracy(path: np.ndarray, pairs: np.ndarray, utts: list[tuple[str, str]]) -> float:
    """Share of the transcript's utterances whose aligned words mostly got the right decoded role (ties:
    the first word's role; an utterance with no aligned word counts wrong), as bench/real_attribution.py scores."""
    votes = np.zeros((len(utts), 2))
    np.add.at(votes, (pairs[:, 0], path[pairs[:, 1]]), 1)
    first = np.full(len(utts), -1)
    has, at = np.unique(pairs[:, 0], return_index=True)  # each aligned utterance's first word
    first[has] = path[pairs[at, 1]]
    role = np.where(votes[:, 1] > votes[:, 0], 1, np.where(votes[:, 0] > votes[:, 1], 0, first))
    return float(np.mean(role == np.array([r == "therapist" for r, _ in utts])))
