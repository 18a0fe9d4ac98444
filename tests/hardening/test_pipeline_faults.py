"""Fault injection at pipeline level: `hybridtune run` (real, personas, scenarios, synth,
curate) with every role bound to the mock OpenAI-compatible server misbehaving on 20% of
requests (429 + Retry-After, 500, hangs past the timeout, truncated and non-JSON bodies,
wrong-schema JSON). The run completes, the request count is fully accounted for by the
usage ledger plus the injected faults, and no record is lost or duplicated.

    .venv/bin/python -m pytest tests/hardening/test_pipeline_faults.py -q
"""
from __future__ import annotations

import json

import pytest

from hybridtune.devtools.mock_openai import MockConfig, MockServer
from tests.hardening.common import hybridtune, jsonl_ids, run_args, tiny_overrides

STAGES = ["real", "split", "personas", "scenarios", "synth", "curate"]
TRANSIENT = ("429", "500", "timeout", "truncated", "not_json")  # retried by the client; wrong_schema is re-asked


@pytest.mark.timeout(300)
def test_pipeline_completes_through_20_percent_faults(tmp_path):
    srv = MockServer(MockConfig(fault_rate=0.2, seed=3, hang=2))
    with srv as url:
        sets = [*tiny_overrides(tmp_path, tmp_path / "runs"), "real.pii.enabled=false",
                "endpoints.local.backend=openai", f"endpoints.local.base_url={url}", "endpoints.local.model=mock",
                "endpoints.local.timeout_s=1",
                "endpoints.local.max_in_flight=4", "llm.backoff_s=0.02", "llm.max_retries=6", "llm.max_reasks=2"]
        out = hybridtune(run_args(sets, STAGES), timeout=280)
        stats = srv.stats()
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / "demo"
    for name in STAGES:
        assert (run / name / "_done.json").exists(), name
    faults = {f: stats[f] for f in (*TRANSIENT, "wrong_schema")}
    assert sum(faults[f] for f in TRANSIENT) > 0 and stats["requests"] >= 20, stats

    # every request the server saw is either a completed call in the usage ledger or an injected
    # transient fault (each of which the client retried or recorded as a failure): nothing unaccounted
    rows = json.loads((run / "usage.json").read_text())["rows"]
    completed = sum(r["calls"] for r in rows)
    assert stats["requests"] == completed + sum(faults[f] for f in TRANSIENT), (stats, rows)

    # no record duplicated; every planned item is written or in the stage's failure ledger
    for name in STAGES:
        for f in (run / name).glob("*.jsonl"):
            ids = jsonl_ids(f)
            assert len(ids) == len(set(ids)), f"{f}: duplicate ids"
    failed = {name: {json.loads(x)["item"] for x in (run / name / "failures.jsonl").read_text().splitlines()}
              if (run / name / "failures.jsonl").exists() else set() for name in STAGES}
    written = set(jsonl_ids(run / "synth" / "sessions.jsonl"))
    skipped = set(jsonl_ids(run / "synth" / "skipped.jsonl"))
    assert len(written | failed["synth"] | skipped) == 3, "a planned session is neither written nor in the failure ledger"
    judged = set(jsonl_ids(run / "curate" / "judged.jsonl"))
    assert written <= judged | failed["curate"], "a synthetic session was neither judged nor in curate's failure ledger"
    drafts = set(jsonl_ids(run / "personas" / "persona_drafts.jsonl"))
    assert len(drafts | failed["personas"] | set(jsonl_ids(run / "personas" / "skipped.jsonl"))) == 3, "a planned persona is neither drafted nor in the failure ledger"
