"""`llm.batch: true` against the mock's OpenAI-style /v1/files + /v1/batches (mock_batch.py).

One batch per round of a stage, results in the response cache, a partly failed batch keeps
its finished lines, and a run killed while waiting follows the same batch on rerun.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time

import pytest
from hardening.common import hybridtune, start

from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.llm import LLMPool, ResponseCache, Usage
from hybridtune.stages import batches


def _pool(make_cfg, tmp_path, url: str) -> LLMPool:
    cfg = make_cfg(f"endpoints.local.base_url={url}", "endpoints.local.model=mock", "llm.batch=true",
                   "llm.batch_poll_s=0.2", "llm.backoff_s=0.05", "llm.prices.mock={input: 2.0, output: 8.0}",
                   backend="openai")
    pool = LLMPool(cfg.pool_config(), cache=ResponseCache(tmp_path / "cache.sqlite"), usage=Usage(cfg.llm.prices))
    pool.usage.stage = "curate"
    pool.batching = batches("curate")  # as the stage context sets it from the declaration
    return pool


def test_one_batch_partly_failed_lines_resent_results_cached(make_cfg, tmp_path):
    srv = MockServer(MockConfig(batch_seconds=0.5, batch_fail_first=2))
    with srv as url:
        pool = _pool(make_cfg, tmp_path, url)
        judge = pool.role("judge")
        msgs = [[{"role": "user", "content": f"rate session {i}"}] for i in range(6)]

        async def go():
            try:
                return await asyncio.gather(*(judge.chat(m) for m in msgs))
            finally:
                await pool.aclose()

        replies = asyncio.run(go())
        stats = srv.stats()
        assert stats["requests"] == 0  # nothing went through /chat/completions
        # first batch: 6 lines, 2 failed; the 4 finished were kept, the 2 failed went in a second batch
        assert stats["batches_created"] == 2 and stats["batch_lines"] == 8
        assert [r.text.endswith(f"rate session {i}") for i, r in enumerate(replies)] == [True] * 6
        assert pool.cache.open_batches("local") == {} and len(pool.cache) == 6
        row = pool.usage.rows[("curate", "judge")]
        full = (row["prompt_tokens"] * 2.0 + row["completion_tokens"] * 8.0) / 1e6
        assert row["calls"] == 6 and row["cost_usd"] == pytest.approx(full * 0.5)  # batch price

        again = asyncio.run(go())  # replay: from the cache, no batch
        assert all(r.cached for r in again)
        assert srv.stats()["batches_created"] == 2


def test_conversations_are_not_batched(make_cfg, tmp_path):
    srv = MockServer()
    with srv as url:
        pool = _pool(make_cfg, tmp_path, url)
        pool.usage.stage = "simulate"
        pool.batching = batches("simulate")
        async def go():
            try:
                await pool.role("counselor").chat([{"role": "user", "content": "hello"}])
            finally:
                await pool.aclose()

        asyncio.run(go())
        stats = srv.stats()
        assert stats["requests"] == 1 and stats["batches_created"] == 0


def _open_batches(run_dir) -> list[str]:
    db = run_dir / "cache.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(str(db))
    try:
        return [r[0] for r in con.execute("SELECT id FROM batches")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_during_a_batch_the_rerun_follows_it_without_a_second_batch(tmp_path):
    srv = MockServer(MockConfig(batch_seconds=8))
    with srv as url:
        sets = [f"runs_dir={tmp_path / 'runs'}", "quiet=true", "endpoints.local.backend=openai",
                f"endpoints.local.base_url={url}", "endpoints.local.model=mock", "llm.batch=true",
                "llm.batch_poll_s=0.3", "synth.personas=4", "synth.persona_checks=false"]
        args = ["run", "configs/demo.yaml", "--stage", "personas"] + [x for s in sets for x in ("--set", s)]
        run_dir = tmp_path / "runs" / "demo"
        proc = start(args)
        deadline = time.time() + 120
        while time.time() < deadline and not _open_batches(run_dir):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        stored = _open_batches(run_dir)
        assert len(stored) == 1 and srv.stats()["batches_created"] == 1
        proc.send_signal(signal.SIGKILL)  # killed while the batch runs: nothing written yet
        proc.wait(timeout=30)
        assert not (run_dir / "personas" / "_done.json").exists()

        out = hybridtune(args, timeout=200)
        assert out.returncode == 0, out.stderr
        stats = srv.stats()
        assert stats["batches_created"] == 1 and stats["requests"] == 0  # followed, not paid twice
        assert _open_batches(run_dir) == []
        drafts = [json.loads(x) for x in (run_dir / "personas" / "persona_drafts.jsonl").read_text().splitlines()]
        assert len(drafts) == 4


def test_a_batch_the_provider_refuses_is_reported_with_its_reason_not_resubmitted(make_cfg, tmp_path):
    from hybridtune.errors import UserError

    srv = MockServer(MockConfig(mode="openai", models="gpt-4.1-mini", batch_seconds=0.5))  # it does not serve "mock"
    with srv as url:
        pool = _pool(make_cfg, tmp_path, url)
        judge = pool.role("judge")

        async def go():
            try:
                return await asyncio.gather(*(judge.chat([{"role": "user", "content": f"rate {i}"}]) for i in range(3)))
            finally:
                await pool.aclose()

        with pytest.raises(UserError) as e:
            asyncio.run(go())
        stats = srv.stats()
    msg = str(e.value)
    assert "was refused by the provider: line 1: model_not_found: The model `mock` does not exist" in msg
    assert stats["batches_created"] == 1  # not resubmitted llm.max_retries times
    assert pool.cache.open_batches("local") == {}
