"""LLM layer logic with the queue-driven fake: cache replay, structured re-asks, retries,
budget, failure ledger, and the stage runner's resume semantics."""
from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from hybridtune.context import map_items
from hybridtune.errors import BudgetExceeded, StructuredOutputError, TooManyFailures, UserError
from hybridtune.llm import LLMPool, ResponseCache, TransientError, Usage
from hybridtune.llm.fake import FakeBackend, schema_example
from hybridtune.records import Record


class Score(BaseModel):
    score: int
    why: str


def _pool(make_cfg, tmp_path, *replies, overrides=(), cache=True):
    cfg = make_cfg(*overrides)
    pool = LLMPool(cfg.pool_config(), cache=ResponseCache(tmp_path / "c.sqlite") if cache else None,
                   usage=Usage(cfg.llm.prices, cfg.llm.budget_usd))
    fake = FakeBackend.with_replies(list(replies))
    pool.install("local", fake)
    return pool, fake


def test_structured_reply_validated(make_cfg, tmp_path):
    pool, _ = _pool(make_cfg, tmp_path, 'Sure! ```json\n{"score": 7, "why": "warm"}\n```')
    r = asyncio.run(pool.role("judge").chat([{"role": "user", "content": "rate"}], schema=Score))
    assert r.parsed == Score(score=7, why="warm") and r.attempts == 1


def test_invalid_reply_is_reasked_with_error_then_fails_with_raw(make_cfg, tmp_path):
    pool, fake = _pool(make_cfg, tmp_path, '{"score": "high"}', "not json", overrides=["llm.max_reasks=1"])
    with pytest.raises(StructuredOutputError) as e:
        asyncio.run(pool.role("judge").chat([{"role": "user", "content": "rate"}], schema=Score))
    assert e.value.raw == "not json" and e.value.attempts == 2
    reask = fake.requests[1].messages[-1]["content"]
    assert "score" in reask and "not valid" in reask  # the validation error is fed back
    assert pool.usage.table()[0]["failures"] == 1


def test_reask_recovers(make_cfg, tmp_path):
    pool, _ = _pool(make_cfg, tmp_path, '{"score": 3}', '{"score": 3, "why": "ok"}')
    r = asyncio.run(pool.role("judge").chat([{"role": "user", "content": "x"}], schema=Score))
    assert r.parsed.score == 3 and r.attempts == 2


def test_cache_replay_makes_zero_calls_and_samples_differ(make_cfg, tmp_path):
    pool, fake = _pool(make_cfg, tmp_path, "a", "b", "c")
    msgs = [{"role": "user", "content": "hi"}]
    r0 = asyncio.run(pool.role("generator").chat(msgs, sample=0))
    r1 = asyncio.run(pool.role("generator").chat(msgs, sample=1))
    assert (r0.text, r1.text) == ("a", "b") and fake.calls == 2
    # a new process: new pool + fake with an empty queue; same cache file
    pool2, fake2 = _pool(make_cfg, tmp_path)
    again = [asyncio.run(pool2.role("generator").chat(msgs, sample=s)) for s in (0, 1)]
    assert [r.text for r in again] == ["a", "b"] and all(r.cached for r in again)
    assert fake2.calls == 0


class _SlowFake(FakeBackend):
    """A remote service's latency: the reply comes after other tasks have run."""

    async def complete(self, req):
        await asyncio.sleep(0.01)
        return await super().complete(req)


def test_identical_requests_in_flight_make_one_call(make_cfg, tmp_path):
    """Defect (simulate, #18): every variant asks the client's opening at once; each copy missed
    the cache and was computed again, so the number of model calls depended on timing."""
    cfg = make_cfg("llm.max_retries=0")
    pool = LLMPool(cfg.pool_config(), cache=ResponseCache(tmp_path / "c.sqlite"), usage=Usage())
    fake = _SlowFake.with_replies([TransientError("500"), "ok", "other"])
    pool.install("local", fake)
    msgs = [{"role": "user", "content": "hi"}]

    async def go():
        return await asyncio.gather(*(pool.role("patient").chat(msgs) for _ in range(4)), return_exceptions=True)

    got = asyncio.run(go())
    # the first call fails (no retries): one waiting copy makes the call itself, the rest take its reply
    assert isinstance(got[0], TransientError) and [r.text for r in got[1:]] == ["ok"] * 3
    assert fake.calls == 1 and [r.cached for r in got[1:]].count(True) == 2 and not pool.inflight


def test_transient_errors_are_retried_with_retry_after(make_cfg, tmp_path):
    pool, fake = _pool(make_cfg, tmp_path, TransientError("429", retry_after=0.01), TransientError("500"), "ok",
                       overrides=["llm.backoff_s=0.01"])
    r = asyncio.run(pool.role("counselor").chat([{"role": "user", "content": "x"}]))
    assert r.text == "ok" and pool.retry_stats.retries == 2


def test_retries_exhausted_raise(make_cfg, tmp_path):
    pool, _ = _pool(make_cfg, tmp_path, *[TransientError("500")] * 3, overrides=["llm.max_retries=2", "llm.backoff_s=0.001"])
    with pytest.raises(TransientError):
        asyncio.run(pool.role("counselor").chat([{"role": "user", "content": "x"}]))


def test_budget_cap_stops_cleanly(make_cfg, tmp_path):
    pool, _ = _pool(make_cfg, tmp_path, "one two three", "again",
                    overrides=["llm.budget_usd=0.000001", "endpoints.local.model=m", "llm.prices.m.input=1000"])
    asyncio.run(pool.role("counselor").chat([{"role": "user", "content": "x " * 50}]))
    with pytest.raises(BudgetExceeded, match="llm.budget_usd"):
        asyncio.run(pool.role("counselor").chat([{"role": "user", "content": "y"}]))


def test_unknown_backend_is_one_clear_error(make_cfg):
    cfg = make_cfg(backend="nosuch")
    with pytest.raises(UserError, match=r"endpoints\.local\.backend: unknown backend 'nosuch'"):
        LLMPool(cfg.pool_config()).role("judge")


def test_missing_gguf_and_missing_key(make_cfg, monkeypatch):
    cfg = make_cfg("endpoints.local.model=/nope/x.gguf", backend="llamacpp")
    with pytest.raises(UserError, match="neither a packaged model"):
        LLMPool(cfg.pool_config()).check()
    monkeypatch.delenv("HT_TEST_KEY", raising=False)
    cfg = make_cfg("endpoints.local.api_key_env=HT_TEST_KEY", backend="openai")
    with pytest.raises(UserError, match="HT_TEST_KEY is not set"):
        LLMPool(cfg.pool_config()).check()


def test_schema_example_satisfies_schema():
    class Inner(BaseModel):
        tags: list[str]

    class Outer(BaseModel):
        a: int
        b: Inner
        c: float | None = None

    Outer.model_validate(schema_example(Outer.model_json_schema()))


class Out(Record):
    n: int


def test_map_items_resumes_records_failures_and_fails_loudly(fake_ctx):
    cm, fake = fake_ctx("llm.max_failure_rate=0.5")
    with cm as ctx:
        st = ctx.store.stage("t")
        calls = []

        async def fn(_key, i):
            calls.append(i)
            if i == 3:
                raise ValueError("bad item")
            return Out(id=f"k{i}", n=i)

        items = [(f"k{i}", i) for i in range(5)]
        res = asyncio.run(map_items(ctx, st, items, fn, "out.jsonl"))
        assert (res.done, res.failed) == (4, 1)
        assert st.ids("out.jsonl") == {"k0", "k1", "k2", "k4"}
        assert "bad item" in st.file("failures.jsonl").read_text()
        calls.clear()
        res2 = asyncio.run(map_items(ctx, st, items, fn, "out.jsonl"))
        assert calls == [3] and res2.skipped == 4  # only the failed item is retried

        async def always_bad(_key, i):
            raise ValueError("x")

        with pytest.raises(TooManyFailures, match="max_failure_rate"):
            asyncio.run(map_items(ctx, ctx.store.stage("u"), items, always_bad, "out.jsonl"))


def test_fine_tunes_are_priced_by_their_base_entry():
    from hybridtune.llm.config import Price
    from hybridtune.llm.usage import Usage

    u = Usage(prices={"gpt-4o-mini": Price(input=0.15, output=0.6), "ft:gpt-4o-mini-2024-07-18": Price(input=0.3, output=1.2)})
    assert u.price("ft:gpt-4o-mini-2024-07-18:org:hybridtune:AbC123", 1_000_000, 1_000_000) == 1.5
    assert u.price("gpt-4o-mini", 1_000_000, 0) == 0.15
    assert u.price("ft:gpt-4.1-mini:org:x:y", 1_000_000, 0) == 0.0  # no entry for that base: unpriced


def test_a_pool_runs_on_its_own_settings_without_an_experiment_config():
    """LLMPool takes a PoolConfig (seed, endpoints, roles, llm); the experiment config builds it in one place."""
    from hybridtune.llm.config import EndpointConfig, LLMConfig, PoolConfig, RoleConfig

    settings = PoolConfig(seed=5, endpoints={"ep": EndpointConfig(backend="fake", model="m")},
                          roles={"judge": RoleConfig(endpoint="ep", temperature=0.1)}, llm=LLMConfig(max_reasks=0))
    pool = LLMPool(settings)
    fake = FakeBackend.with_replies(['{"score": "x"}'])
    pool.install("ep", fake)
    with pytest.raises(StructuredOutputError):  # max_reasks=0: the first invalid reply fails
        asyncio.run(pool.role("judge").chat([{"role": "user", "content": "rate"}], schema=Score))
    req = fake.requests[0]
    assert fake.calls == 1 and fake.endpoint.model == "m" and req.temperature == 0.1 and req.seed is not None


def test_the_experiment_config_builds_the_pool_settings(make_cfg):
    cfg = make_cfg("seed=9", "llm.max_retries=2")
    pc = cfg.pool_config()
    assert (pc.seed, pc.llm, set(pc.roles)) == (9, cfg.llm, set(cfg.roles))
    assert pc.endpoints["local"] is cfg.endpoints["local"] and pc.roles["judge"] is cfg.roles["judge"]
