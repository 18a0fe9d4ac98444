"""Contamination: evaluation scenarios that (nearly) appear in text that is trained on.

One measure, one config section (`contamination:`), used by every stage that checks:
`eval_scenarios` (scenarios vs training texts: contaminated scenarios are quarantined),
`mix` (training sessions vs evaluation scenarios: contaminated sessions are dropped) and
`simulate` (scenarios vs the final mix sets: contaminated scenarios are left out).

    dropped = session_hits(sessions, scenarios, cfg.contamination)        # mix: {session id: hit}
    texts, client, files = training_texts(ctx.store.root)               # what is (or will be) trained on
    bad = scenario_hits({s.id: scenario_text(s) for s in scenarios}, texts, cfg.contamination, client)

The measure is containment: the share of a scenario's word n-grams (`shingle_size`) found in
one training text. A scenario copied into a long session shares few n-grams with it
relative to their union (Jaccard, reported beside it), but nearly all of its own. An
inverted index keeps the check linear in the total text size. `method: embedding|both`
adds a sentence-embedding cosine (all-MiniLM-L6-v2) that catches paraphrase.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .records import Scenario, Session
from .store import read_jsonl_dicts

_WORD = re.compile(r"\w+")


class ContaminationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    method: Literal["both", "shingles", "embedding", "off"] = Field(
        "both", description="near-duplicate check of training text against the evaluation scenarios: "
        "word-shingle containment, sentence-embedding cosine (client turns vs scenario), both, or off")
    threshold: float = Field(
        0.5, gt=0, le=1, description="contaminated when this share of a scenario's word shingles appears in "
        "one training text (containment)")
    shingle_size: int = Field(3, ge=1, description="words per shingle")
    embedding_threshold: float = Field(
        0.75, gt=0, le=1, description="contaminated when a training text's client turns reach this cosine "
        "similarity (all-MiniLM-L6-v2) to a scenario; measured: same topic 0.2-0.35, close paraphrase ~0.55, "
        "near-copy > 0.9")


# where the keys lived before this section existed (old configs still load)
LEGACY_KEYS = {("mix", "contamination"): "method", ("mix", "contamination_threshold"): "threshold",
               ("mix", "shingle_size"): "shingle_size", ("mix", "embedding_threshold"): "embedding_threshold",
               ("evaluate", "contamination_threshold"): "threshold"}


def migrate_legacy(data: dict) -> dict:
    """Move old `mix.contamination*` / `evaluate.contamination_threshold` keys into `contamination:`."""
    for (section, key), new in LEGACY_KEYS.items():
        sec = data.get(section)
        if isinstance(sec, dict) and key in sec:
            target = data.setdefault("contamination", {})
            if isinstance(target, dict):
                target.setdefault(new, sec.pop(key))
    return data


class Hit(BaseModel):
    """A (scenario, training text) pair over a threshold."""

    scenario_id: str
    text_id: str
    method: Literal["shingles", "embedding"]
    containment: float | None = None
    jaccard: float | None = None
    cosine: float | None = None

    @property
    def strength(self) -> float:
        return self.containment if self.containment is not None else self.cosine or 0.0


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams of lower-cased text (the unit of near-duplicate matching)."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def scenario_text(s: Scenario) -> str:
    return f"{s.summary}\n{s.scenario}"


def find(scenarios: dict[str, str], texts: dict[str, str], cfg: ContaminationConfig,
         embed_texts: dict[str, str] | None = None) -> list[Hit]:
    """Every (scenario, text) pair over the configured threshold(s), by the configured method(s).

    `embed_texts` (default `texts`) is what the embedding compares with a scenario: for a
    session, its client turns, which is where a copied scenario would show up.
    """
    hits: list[Hit] = []
    if cfg.method in ("shingles", "both"):
        hits += _shingle_hits(scenarios, texts, cfg)
    if cfg.method in ("embedding", "both") and scenarios and texts:
        hits += _embedding_hits(scenarios, embed_texts or texts, cfg.embedding_threshold)
    return hits


def best_by(hits: list[Hit], key: Literal["scenario_id", "text_id"]) -> dict[str, Hit]:
    """The strongest hit per scenario or per text; a shingle hit wins over an embedding one."""
    out: dict[str, Hit] = {}
    for h in hits:
        k = getattr(h, key)
        cur = out.get(k)
        if cur is None or (h.method, h.strength) > (cur.method, cur.strength):  # "shingles" > "embedding"
            out[k] = h
    return out


def _shingle_hits(scenarios: dict[str, str], texts: dict[str, str], cfg: ContaminationConfig) -> list[Hit]:
    index: dict[str, list[str]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for tid, text in texts.items():
        sh = shingles(text, cfg.shingle_size)
        sizes[tid] = len(sh)
        for s in sh:
            index[s].append(tid)
    hits = []
    for sid, text in scenarios.items():
        qs = shingles(text, cfg.shingle_size)
        if not qs:
            continue
        counts: dict[str, int] = defaultdict(int)
        for s in qs:
            for tid in index.get(s, ()):
                counts[tid] += 1
        for tid, c in counts.items():
            if c / len(qs) >= cfg.threshold:
                hits.append(Hit(scenario_id=sid, text_id=tid, method="shingles", containment=round(c / len(qs), 3),
                                jaccard=round(c / (len(qs) + sizes[tid] - c), 3)))
    return hits


def _embedding_hits(scenarios: dict[str, str], texts: dict[str, str], threshold: float) -> list[Hit]:
    import numpy as np

    from .embed import embed

    tids, sids = list(texts), list(scenarios)
    sims = embed([texts[t] for t in tids]) @ embed([scenarios[s] for s in sids]).T
    assert np.isfinite(sims).all(), "embedding similarities must be finite"
    return [Hit(scenario_id=sids[j], text_id=tids[i], method="embedding", cosine=round(float(sims[i, j]), 3))
            for i, j in zip(*np.nonzero(sims >= threshold), strict=True)]


def describe(h: Hit, n: int) -> str:
    if h.method == "shingles":
        return f"{h.containment:.0%} of its word {n}-grams appear in training text {h.text_id}"
    return f"its cosine similarity to training text {h.text_id} is {h.cosine:.2f}"


def session_hits(sessions: list[Session], scenarios: list[Scenario], cfg: ContaminationConfig) -> dict[str, dict]:
    """Training sessions near-duplicating an evaluation scenario: {session id: hit record}."""
    if cfg.method == "off" or not scenarios:
        return {}
    by_id = {s.id: s for s in sessions}
    hits = find({sc.id: scenario_text(sc) for sc in scenarios}, {s.id: s.text() for s in sessions}, cfg,
                {s.id: "\n".join(s.turns("user")) for s in sessions})
    return {sid: {"id": sid, "source": by_id[sid].source, **h.model_dump(exclude={"text_id"}, exclude_none=True)}
            for sid, h in sorted(best_by(hits, "text_id").items())}


def scenario_hits(scenarios: dict[str, str], texts: dict[str, str], cfg: ContaminationConfig,
                  embed_texts: dict[str, str] | None = None) -> list[dict]:
    """Scenarios ({id: scenario_text}) near-duplicated in training text, in order: [{id, train_id, ...}]."""
    if cfg.method == "off":
        return []
    best = best_by(find(scenarios, texts, cfg, embed_texts), "scenario_id")
    return [{"id": sid, "train_id": best[sid].text_id, "reason": describe(best[sid], cfg.shingle_size),
             **best[sid].model_dump(exclude={"scenario_id", "text_id"}, exclude_none=True)}
            for sid in scenarios if sid in best]


def training_texts(root: Path, final_only: bool = False) -> tuple[dict[str, str], dict[str, str], list[Path]]:
    """Texts that are (or will be) trained on, keyed "<folder>/<file>:<id>": (full texts, client turns, files).

    The mix training sets when they exist; otherwise (unless `final_only`) the curated,
    synthetic and real sessions and the training scenarios they came from."""
    mix = sorted((root / "mix").glob("*/train.jsonl")) + sorted((root / "mix").glob("*/valid.jsonl"))
    files = mix if mix or final_only else [root / "real" / "sessions.jsonl", root / "synth" / "sessions.jsonl",
                                           root / "curate" / "selected.jsonl", root / "scenarios" / "scenarios.jsonl"]
    texts: dict[str, str] = {}
    client: dict[str, str] = {}
    for f in files:
        for i, d in enumerate(read_jsonl_dicts(f)):
            key = f"{f.parent.name}/{f.name}:{d.get('id', i)}"
            if "messages" in d:
                msgs = [m for m in d["messages"] if isinstance(m, dict)]
                texts[key] = "\n".join(str(m.get("content", "")) for m in msgs if m.get("role") != "system")
                client[key] = "\n".join(str(m.get("content", "")) for m in msgs if m.get("role") == "user")
            elif "scenario" in d:
                texts[key] = client[key] = f"{d.get('summary', '')}\n{d.get('scenario', '')}"
    return texts, client, files
