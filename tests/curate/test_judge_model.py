"""The curate stage with the real embedded model (SmolLM2-135M in llama.cpp) on one session:
the structured verdict is grammar-constrained and validated, or the session goes to review.
Its scores are noise at this size; the test checks the machinery, not the judgement."""
from __future__ import annotations

import pytest

from hybridtune.context import open_run
from hybridtune.curate import judge
from hybridtune.records import Message, Session

pytestmark = pytest.mark.model


def test_embedded_judge_scores_or_routes_to_review(make_cfg):
    cfg = make_cfg("roles.judge.max_tokens=100", "curate.max_tokens=320", "roles.judge.temperature=0", "llm.max_reasks=0",
                   "llm.max_failure_rate=1", backend="llamacpp")
    s = Session(id="s1", source="synthetic", meta={"techniques": ["socratic_questioning"]}, messages=[
        Message(role="user", content="I can't sleep before exams. I'm sure I'll fail."),
        Message(role="assistant", content="That sounds stressful. What makes you sure you will fail?"),
        Message(role="user", content="I failed one last year."),
        Message(role="assistant", content="One exam. How did the others go?")])
    with open_run(cfg) as ctx:
        ctx.store.stage("synth").write_records("sessions.jsonl", [s])
        summary = ctx.run_stage("curate", judge.run)
        st = ctx.store.stage("curate")
        judged = list(st.read("judged.jsonl", Session))
        where = {k: [x.id for x in st.read(f"{k}.jsonl", Session)] for k in ("selected", "review", "rejected")}
    assert sum(len(v) for v in where.values()) == 1
    if judged:
        j = judged[0].scores["judge"]
        assert all(1 <= j[c] <= 10 for c in judge.CRITERIA) and j["prompt"] == "curate_judge@2"
        assert j["model"] and summary["done"] == 1
    else:
        assert where["review"] == ["s1"] and summary["judge_failed"] == 1
