"""Fault injection: a local OpenAI-compatible server returns 429 (Retry-After), 500, hangs,
truncated and non-JSON bodies and wrong-schema JSON at 20%; a stage over it completes,
counts retries and failures, and loses or duplicates no record."""
from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel

from hybridtune.context import map_items, open_run
from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.records import Record


class Verdict(BaseModel):
    score: int
    reason: str


class Out(Record):
    score: int


def test_stage_survives_20_percent_faults(make_cfg):
    srv = MockServer(MockConfig(delay=0.01, fault_rate=0.2, hang=3, seed=1))
    with srv as url:
        cfg = make_cfg(f"endpoints.local.base_url={url}", "endpoints.local.timeout_s=1",
                       "endpoints.local.max_in_flight=8", "llm.backoff_s=0.02", "llm.max_retries=6",
                       "llm.max_reasks=2", backend="openai")
        with open_run(cfg) as ctx:
            st = ctx.store.stage("faulty")
            judge = ctx.llm("judge")

            async def one(_key, i):
                r = await judge.chat([{"role": "user", "content": f"rate item {i}"}], schema=Verdict)
                return Out(id=f"k{i}", score=r.parsed.score)

            items = [(f"k{i}", i) for i in range(40)]
            res = asyncio.run(map_items(ctx, st, items, one, "out.jsonl", concurrency=8))
            retries = ctx.llms.retry_stats.retries
        stats = srv.stats()
    ids = [json.loads(x)["id"] for x in st.file("out.jsonl").read_text().splitlines()]
    failed = {json.loads(x)["item"] for x in st.file("failures.jsonl").read_text().splitlines()} if res.failed else set()
    assert len(ids) == len(set(ids)), "no duplicates"
    assert set(ids) | failed == {k for k, _ in items}, "every item is either written or in the failure ledger"
    assert res.done + res.failed == 40
    assert sum(stats[f] for f in ("429", "500", "timeout", "truncated", "not_json")) > 0
    assert retries > 0, "transient faults were retried"
    assert res.done >= 36  # 6 retries and 2 re-asks make a lost item very unlikely at 20%


def test_openai_backend_survives_successive_event_loops(make_cfg):
    """Each stage runs its own asyncio.run; clients and limiters must not leak across loops."""
    with MockServer(MockConfig(delay=0.0)) as url:
        cfg = make_cfg(f"endpoints.local.base_url={url}", "llm.cache=false", backend="openai")
        from hybridtune.llm import LLMPool

        pool = LLMPool(cfg.pool_config())
        for i in range(3):
            r = asyncio.run(pool.role("counselor").chat([{"role": "user", "content": f"loop {i}"}]))
            assert f"loop {i}" in r.text
