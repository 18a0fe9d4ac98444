"""Benchmark: overhead of the LLM layer (issue 2).

(a) Orchestration: 512 requests, 64 in flight, against a local mock endpoint that answers
    after a fixed delay L (1 s). Ideal throughput is 64 / L requests/s; report achieved / ideal
    (target >= 0.9).
(b) Embedded: tokens/s of the SmolLM2 GGUF through the layer (llamacpp backend, cache off)
    / tokens/s of raw `llama_cpp.Llama.create_chat_completion` on the same prompts, same
    seed, measured in one run, interleaved (target >= 0.95).

    .venv/bin/python bench/llm_orchestration.py
"""
from __future__ import annotations

import asyncio
import time

from common import Result, record

from hybridtune.config import load_config
from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.llm import LLMPool, Usage

CMD = ".venv/bin/python bench/llm_orchestration.py"


async def _raw_sdk(url: str, n: int, inflight: int) -> float:
    """Baseline: the bare openai SDK with a semaphore, no layer (same server, same load)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    sem = asyncio.Semaphore(inflight)

    async def one(i: int) -> None:
        async with sem:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"message {i}"}])

    await one(-1)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    dt = time.perf_counter() - t0
    await client.close()
    return n / dt


def orchestration(delay: float = 1.0, n: int = 512, inflight: int = 64) -> list[Result]:
    with MockServer(MockConfig(delay=delay)) as url:
        raw_rate = asyncio.run(_raw_sdk(url, n, inflight))
        cfg = load_config(None, ["endpoints.local.backend=openai", f"endpoints.local.base_url={url}",
                                 f"endpoints.local.max_in_flight={inflight}", "llm.cache=false", "quiet=true"])
        pool = LLMPool(cfg.pool_config(), usage=Usage())
        llm = pool.role("counselor")

        async def go():
            await llm.chat([{"role": "user", "content": "warm-up"}])
            t0 = time.perf_counter()
            await asyncio.gather(*(llm.chat([{"role": "user", "content": f"message {i}"}]) for i in range(n)))
            dt = time.perf_counter() - t0
            await pool.aclose()
            return dt

        dt = asyncio.run(go())
    achieved, ideal = n / dt, inflight / delay
    ratio = achieved / ideal
    return [
        Result(f"LLM layer orchestration ({n} requests, {inflight} in flight, mock endpoint L={delay} s)",
               f"{achieved:.1f} req/s", f"ideal {inflight}/L = {ideal:.1f} req/s", round(ratio, 3), ">= 0.9",
               ratio >= 0.9, CMD, notes="mock server and client share the 2 cores"),
        Result("LLM layer vs bare openai SDK (same mock, same concurrency)", f"{achieved:.1f} req/s",
               f"bare SDK {raw_rate:.1f} req/s", round(achieved / raw_rate, 3), "(context)", None, CMD),
    ]


PROMPTS = [
    "I keep thinking I will fail my exams. What can I do?",
    "My partner and I argue every evening and I feel exhausted.",
    "I can't sleep because I worry about work.",
    "Since my father died I don't enjoy anything.",
]


def embedded(max_tokens: int = 96, rounds: int = 2) -> Result:
    from llama_cpp import Llama

    from hybridtune.llm.llamacpp import find_gguf

    gguf = str(find_gguf("smollm2"))
    raw = Llama(model_path=gguf, n_ctx=2048, verbose=False)
    cfg = load_config(None, ["llm.cache=false", "quiet=true", "endpoints.local.n_ctx=2048",
                             f"roles.counselor.max_tokens={max_tokens}", "roles.counselor.temperature=0.7",
                             "roles.counselor.seed=1"])
    pool = LLMPool(cfg.pool_config(), usage=Usage())
    llm = pool.role("counselor")
    warm = [{"role": "user", "content": "hello"}]
    raw.create_chat_completion(messages=warm, max_tokens=8)
    asyncio.run(llm.chat(warm, max_tokens=8))
    raw_tok = raw_t = lay_tok = lay_t = 0.0
    for r in range(rounds):
        for i, p in enumerate(PROMPTS):
            msgs = [{"role": "user", "content": p}]
            seed = llm.request(msgs, None, sample=i).seed
            t0 = time.perf_counter()
            out = raw.create_chat_completion(messages=msgs, temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=seed)
            raw_t += time.perf_counter() - t0
            raw_tok += out["usage"]["completion_tokens"]
            t0 = time.perf_counter()
            rep = asyncio.run(llm.chat(msgs, sample=i))
            lay_t += time.perf_counter() - t0
            lay_tok += rep.completion_tokens
    raw_rate, lay_rate = raw_tok / raw_t, lay_tok / lay_t
    ratio = lay_rate / raw_rate
    return Result("Embedded llama.cpp through the layer vs raw llama_cpp.Llama (SmolLM2-135M, same prompts/seeds)",
                  f"{lay_rate:.1f} tok/s", f"raw {raw_rate:.1f} tok/s", round(ratio, 3), ">= 0.95", ratio >= 0.95, CMD,
                  notes=f"{int(lay_tok)} vs {int(raw_tok)} completion tokens over {rounds * len(PROMPTS)} prompts each")


if __name__ == "__main__":
    record("llm_orchestration", [*orchestration(), embedded()])
