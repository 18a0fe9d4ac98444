"""Leakage check of the `mix` stage: does any training set see a held-out test session?

Checks every training file (`<variant>/{train,valid}.jsonl`) against every test split
(`test_*.jsonl`): shared ids; lineage (a synthetic training session generated with a
held-out real session as its few-shot exemplar, or from a scenario whose sessions are held
out; a QA unit cut from a held-out session); exact text (hash of the normalised dialogue, system prompt left out since every
session shares it); near-duplicate text (containment of word shingles in the smaller of the
two sessions, `mix.leakage_threshold`). Any hit is a leak: the mix stage fails the run.

    report = check({"hybrid/train.jsonl": [...]}, {"test_real.jsonl": [...]}, threshold=0.5, k=8)
    report["leaks"]   # [] when clean
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict

from ..contamination import shingles
from ..meta import SynthMeta
from ..records import Session

CHECKS = ["id", "unit of a held-out session", "few-shot exemplar", "scenario", "exact text", "near-duplicate text"]


def dialogue(s: Session) -> str:
    return "\n".join(m.content for m in s.messages if m.role != "system")


def _digest(text: str) -> str:
    """Hash of the dialogue's lower-cased words (punctuation and spacing ignored)."""
    return hashlib.sha1(" ".join(re.findall(r"\w+", text.lower())).encode()).hexdigest()


def _synth(s: Session) -> SynthMeta | None:
    """The synthetic stage's meta of a synthetic session (its scenario, few-shot exemplars); None otherwise."""
    return SynthMeta.of(s) if s.source == "synthetic" else None


def check(train: dict[str, list[Session]], test: dict[str, list[Session]], threshold: float = 0.5,
          k: int = 8) -> dict:
    """{"checks", "train_sessions", "test_sessions", "leaks": [{kind, train_file, train_id, test_file, test_id, ...}]}."""
    leaks: list[dict] = []
    test_of = {s.id: name for name, ss in test.items() for s in ss}
    test_scen = {m.scenario_id: name for name, ss in test.items() for s in ss if (m := _synth(s)) and m.scenario_id}
    tr = [(name, s) for name, ss in train.items() for s in ss]
    for name, s in tr:
        if s.id in test_of:
            leaks.append({"kind": "id", "train_file": name, "train_id": s.id, "test_file": test_of[s.id], "test_id": s.id})
        src = s.meta.get("session_id")  # a QA unit cut from a session
        if src and src != s.id and src in test_of:
            leaks.append({"kind": "unit of a held-out session", "train_file": name, "train_id": s.id,
                          "test_file": test_of[src], "test_id": src})
        m = _synth(s)
        for fid in m.fewshot_ids if m else []:
            if fid in test_of:
                leaks.append({"kind": "few-shot exemplar", "train_file": name, "train_id": s.id,
                              "test_file": test_of[fid], "test_id": fid})
        if m and m.scenario_id in test_scen:
            leaks.append({"kind": "scenario", "train_file": name, "train_id": s.id, "test_file": test_scen[m.scenario_id],
                          "scenario_id": m.scenario_id})
    # text: exact by hash, near by shingle containment through an inverted index of the test side
    tests = [(name, s) for name, ss in test.items() for s in ss]
    exact = {}
    index: dict[int, list[int]] = defaultdict(list)
    sizes = []
    for j, (_, s) in enumerate(tests):
        text = dialogue(s)
        exact.setdefault(_digest(text), j)
        sh = shingles(text, k)
        sizes.append(len(sh))
        for h in sh:
            index[h].append(j)
    for name, s in tr:
        text = dialogue(s)
        j = exact.get(_digest(text))
        if j is not None and text.strip():
            leaks.append({"kind": "exact text", "train_file": name, "train_id": s.id, "test_file": tests[j][0],
                          "test_id": tests[j][1].id})
            continue
        sh = shingles(text, k)
        overlap = Counter(j for h in sh for j in index.get(h, ()))
        for j, inter in overlap.items():
            cont = inter / max(1, min(len(sh), sizes[j]))
            if cont >= threshold:
                leaks.append({"kind": "near-duplicate text", "train_file": name, "train_id": s.id,
                              "test_file": tests[j][0], "test_id": tests[j][1].id, "containment": round(cont, 3)})
    return {"checks": CHECKS, "threshold": threshold, "shingle_words": k, "train_sessions": len(tr),
            "test_sessions": len(tests), "leaks": leaks}


def describe(leak: dict) -> str:
    """One line naming both sides of a leak."""
    what = leak.get("test_id") or f"scenario {leak.get('scenario_id')}"
    extra = f" (containment {leak['containment']})" if "containment" in leak else ""
    return f"{leak['kind']}: {leak['train_file']} {leak['train_id']} <-> {leak['test_file']} {what}{extra}"
