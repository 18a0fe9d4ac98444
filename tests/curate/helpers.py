"""Builders for curate tests: sessions with known techniques/topics, judge replies, a seeded run."""
from __future__ import annotations

import json

from hybridtune.records import Message, Scenario, Session, stable_id
from hybridtune.store import RunStore


def session(i: int, source: str = "synthetic", techniques=("validation",), topic: str = "work", turns: int = 4,
            words: str = "", mean: float | None = None, flags=(), risk: str = "none") -> Session:
    msgs = []
    for t in range(turns):
        role = "user" if t % 2 == 0 else "assistant"
        msgs.append(Message(role=role, content=f"{source} session {i} turn {t} {words} about {topic}".strip()))
    s = Session(id=stable_id("test", source, i), source=source, messages=msgs,
                meta={"techniques": list(techniques), "topic": topic})
    if mean is not None:
        s.scores["judge"] = {"coherence": round(mean), "realism": round(mean), "therapeutic_value": round(mean),
                             "technique_adherence": round(mean), "mean": mean, "flags": list(flags),
                             "rationales": {}, "prompt": "curate_judge@2", "model": "fake"}
    s.scores["risk"] = {"risk": risk, "categories": []}
    return s


def verdict(score: int, **flags) -> str:
    crit = {"score": score, "rationale": f"scored {score}"}
    f = {k: bool(flags.get(k, False)) for k in ("unsafe_advice", "role_confusion", "repetition", "abrupt_ending", "crisis_content")}
    return json.dumps({"coherence": crit, "realism": crit, "therapeutic_value": crit, "technique_adherence": crit, "flags": f})


def write_curated(run_dir, selected=(), review=(), rejected=()) -> None:
    st = RunStore(run_dir).stage("curate")
    for name, rows in (("selected", selected), ("review", review), ("rejected", rejected)):
        st.write_records(f"{name}.jsonl", [s.model_copy(update={"meta": {**s.meta, "curate": {"status": name, "reasons": [name]}}})
                                           for s in rows])


def scenario(i: int, text: str) -> Scenario:
    return Scenario(id=stable_id("scen", i), summary=f"scenario {i}", scenario=text)
