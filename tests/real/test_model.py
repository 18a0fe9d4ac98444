"""The real stage's LLM steps with the real embedded model (SmolLM2-135M via llama.cpp), tiny:
speaker attribution of one caption file and annotation of two turns. The 135M model's labels
are close to noise; this checks the machinery (schema-constrained output, ids from the domain)."""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT
from hybridtune.context import open_run
from hybridtune.real.stage import run
from hybridtune.records import Session


@pytest.mark.model
def test_real_stage_with_embedded_model(make_cfg, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ROOT / "data" / "demo" / "sleep.vtt", d)
    cfg = make_cfg(f"real.inputs=[{d}]", "real.annotate.max_sessions=1", "real.annotate.max_turns_per_session=2",
                   "real.attribution.llm_below=1.0", "real.attribution.llm=true", "real.annotate.enabled=true",
                   "real.pii.ner=false", "roles.annotator.max_tokens=60",
                   "roles.annotator.temperature=0", "llm.max_failure_rate=1.0", "llm.max_reasks=0", backend="llamacpp")
    with open_run(cfg) as ctx:
        summary = ctx.run_stage("real", run)
    st = ctx.store.stage("real")
    (s,) = st.read("sessions.jsonl", Session)
    assert s.meta["attribution"]["llm"] in ("agreed", "flipped", "failed")
    assert summary["llm"]["annotate"]["turns"] == 2
    done = st.ids("annotations.jsonl") | {f["item"] for f in st.read_dicts("failures.jsonl")}
    assert len(done) == 2  # every item either annotated or recorded as a failure with its raw text
    tech = {t.id for t in ctx.domain.techniques}
    for a in s.annotations:
        assert set(a.techniques) <= tech and (a.emotion is None or a.emotion in ctx.domain.emotions)
