"""Held-out likelihood (stage `likelihood`): the math on a known small example, the stage
end to end with a fake scoring backend, the openai backend's prompt_logprobs path against
a fake vLLM client, and (marked `model`) llama.cpp token log-probabilities checked against
transformers on the same GGUF."""
from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from hybridtune.llm.config import EndpointConfig
from hybridtune.evaluate import likelihood as L
from hybridtune.llm import NotSupported, TokenLogprobs
from hybridtune.llm.fake import FakeBackend
from hybridtune.llm.limits import LoopLocal
from hybridtune.llm.openai_backend import OpenAIBackend
from hybridtune.records import Message, ModelEntry, Session

DIALOGUE = [
    {"role": "system", "content": "You are a CBT counselor."},
    {"role": "user", "content": "I failed my exam and I feel like a total failure."},
    {"role": "assistant", "content": "That sounds really hard. What went through your mind when you saw the grade?"},
    {"role": "user", "content": "That I'll never be good at anything."},
    {"role": "assistant", "content": "Let's look at the evidence for that thought together."},
]


def row(v, sid, nll_sum, tokens, split="test_real"):
    return L.SessionNLL(id=f"{v}{sid}{split}", variant=v, split=split, session_id=sid, turns=1, tokens=tokens,
                        nll_sum=nll_sum)


def test_nll_of_turns():
    turns = [TokenLogprobs(["a", "b"], [-1.0, -0.5]), TokenLogprobs(), TokenLogprobs(["c"], [-2.0])]
    assert L.nll_of(turns) == (3.5, 3, 2, 1)  # the empty turn did not fit the context: counted as truncated


def test_token_weighted_nll_and_perplexity_known_example():
    s = L.summarize_split([row("a", "s1", 2.0, 2), row("a", "s2", 6.0, 3)], 500, 0.95, 0)
    assert s["nll"] == pytest.approx(8 / 5) and s["ppl"] == pytest.approx(math.exp(1.6))
    assert s["sessions"] == 2 and s["tokens"] == 5
    lo, hi = s["nll_ci"]
    assert 1.0 <= lo <= 1.6 <= hi <= 2.0  # resampling sessions: 1.0 (s1 twice) .. 2.0 (s2 twice)
    assert s["ppl_ci"] == pytest.approx([math.exp(lo), math.exp(hi)])
    empty = L.summarize_split([], 500, 0.95, 0)
    assert empty["nll"] is None and empty["nll_ci"] is None


def test_paired_comparison_known_example():
    rows = [row("a", "s1", 1.0, 1), row("a", "s2", 4.0, 2), row("a", "s3", 3.0, 1),
            row("b", "s1", 1.5, 1), row("b", "s2", 5.0, 2), row("b", "s3", 3.5, 1), row("b", "only_b", 1.0, 1)]
    c = L.paired_comparison("a", "b", "test_real", rows, 500, 0.95, 0)
    assert c["n"] == 3  # only sessions both variants scored
    # token-weighted like the table: (1 + 4 + 3) / 4 - (1.5 + 5 + 3.5) / 4
    assert c["estimate"] == pytest.approx(-0.5) and c["comparable"]
    assert c["ci"] is None  # every resample gives -0.5: no interval rather than a zero-width one
    assert c["p"] == pytest.approx(0.25)  # exact two-sided sign-flip test, n=3, all one sign: 2 / 2**3
    res = L.summarize(rows, ["a", "b"], 500, 0.95, 0)
    assert [(x["a"], x["b"], x["split"]) for x in res["comparisons"]] == [("b", "a", "test_real")]
    assert res["comparisons"][0]["estimate"] == pytest.approx(0.5) and not res["comparisons"][0]["significant"]


def test_scoring_messages_uses_shared_system_prompt_and_cuts_turns():
    s = Session(id="x", source="real", messages=[Message(**m) for m in DIALOGUE])
    msgs = L.scoring_messages("SHARED", s, max_turns=1)
    assert msgs[0] == {"role": "system", "content": "SHARED"}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]


class ScoringFake(FakeBackend):
    """Fake with prompt log-probabilities: -1 nat per word of each assistant turn."""

    async def token_logprobs(self, messages, model):
        assert messages[0]["role"] == "system"
        return [TokenLogprobs(m["content"].split(), [-1.0] * len(m["content"].split()))
                for m in messages if m["role"] == "assistant"]


def test_likelihood_stage_end_to_end(make_cfg):
    from hybridtune.context import open_run
    from hybridtune.llm import LLMPool
    from hybridtune.registry import save_entry

    cfg = make_cfg("endpoints.hosted.backend=openai", "evaluate.bootstrap_resamples=200",
                   "variants={base: {sources: []}, real: {sources: [real]}, gpt: {sources: []}}")
    pool = LLMPool(cfg.pool_config())
    pool.install("local", ScoringFake())
    with open_run(cfg, pool=pool) as ctx:
        for v in ("base", "real"):
            save_entry(ctx.store, ModelEntry(variant=v, backend="fake", model="fake"))
        save_entry(ctx.store, ModelEntry(variant="gpt", backend="openai", model="gpt-4o-mini", endpoint="hosted"))
        sess = [Session(id=f"r{i}", source="real", messages=[Message(**m) for m in DIALOGUE]) for i in range(3)]
        ctx.store.stage("mix").write_records("test_real.jsonl", sess)
        summary = ctx.run_stage("likelihood", L.run)
        res = ctx.store.stage("likelihood").read_json("summary.json")
        rows = list(ctx.store.stage("likelihood").read("sessions.jsonl", L.SessionNLL))
    assert summary["variants"] == 2 and summary["skipped"] == 1
    assert "hosted OpenAI" in res["skipped"]["gpt"]
    assert len(rows) == 6 and all(r.turns == 2 and r.nll == 1.0 for r in rows)
    assert res["variants"]["base"]["test_real"]["nll"] == 1.0
    assert res["variants"]["base"]["test_synthetic"]["sessions"] == 0
    (c,) = res["comparisons"]
    assert (c["a"], c["b"], c["estimate"], c["significant"]) == ("real", "base", 0.0, False)


class FakeVLLM:
    """Stands in for AsyncOpenAI against vLLM: a whitespace 'tokenizer' over a ChatML-like prompt."""

    def __init__(self):
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))
        self.bodies = []

    @staticmethod
    def render(messages, gen):
        toks = []
        for m in messages:
            toks += [f"<{m['role']}>", *m["content"].split(), "<end>", "\n"]
        return toks + (["<assistant>"] if gen else [])

    async def create(self, model, messages, max_tokens, temperature, extra_body):
        self.bodies.append(extra_body)
        toks = self.render(messages, extra_body["add_generation_prompt"])
        plp = None
        if "prompt_logprobs" in extra_body:
            plp = [None] + [{str(i): {"logprob": -0.1 * (i + 1), "rank": 1, "decoded_token": t}}
                            for i, t in enumerate(toks[1:])]
        return SimpleNamespace(usage=SimpleNamespace(prompt_tokens=len(toks)), model_extra={"prompt_logprobs": plp})

    async def close(self):
        pass


def test_openai_backend_prompt_logprobs_spans():
    be = OpenAIBackend(EndpointConfig(backend="openai", base_url="http://127.0.0.1:9/v1"), "vllm")
    fake = FakeVLLM()
    be._clients = LoopLocal(lambda: [fake])
    out = asyncio.run(be.token_logprobs(DIALOGUE, "m"))
    assert len(out) == 2
    assert out[0].tokens == [*DIALOGUE[2]["content"].split(), "<end>"]  # the turn and its end token; "\n" dropped
    assert out[1].tokens == [*DIALOGUE[4]["content"].split(), "<end>"]
    head = len(FakeVLLM.render(DIALOGUE[:2], True))
    assert out[0].logprobs[0] == pytest.approx(-0.1 * head)  # entry i+1 carries -0.1*(i+1)
    assert fake.bodies[1]["prompt_logprobs"] == 0 and fake.bodies[1]["add_generation_prompt"] is False


def test_openai_backend_refuses_honestly():
    hosted = OpenAIBackend(EndpointConfig(backend="openai"), "openai")
    with pytest.raises(NotSupported, match="hosted OpenAI"):
        asyncio.run(hosted.token_logprobs(DIALOGUE, "gpt-4o-mini"))
    off = OpenAIBackend(EndpointConfig(backend="openai", base_url="http://x/v1", logprobs=False), "srv")
    with pytest.raises(NotSupported, match="logprobs is false"):
        asyncio.run(off.token_logprobs(DIALOGUE, "m"))

    class NoLogprobs(FakeVLLM):  # llama-cpp-python's server ignores prompt_logprobs
        async def create(self, **kw):
            r = await super().create(**kw)
            r.model_extra = {}
            return r

    srv = OpenAIBackend(EndpointConfig(backend="openai", base_url="http://x/v1"), "llamaserver")
    srv._clients = LoopLocal(lambda: [NoLogprobs()])
    with pytest.raises(NotSupported, match="no prompt_logprobs"):
        asyncio.run(srv.token_logprobs(DIALOGUE, "m"))


@pytest.mark.model
def test_llamacpp_logprobs_match_transformers(gguf_path):
    """llama.cpp's per-token log-probabilities of the assistant turns equal transformers'
    on the dequantized weights of the same GGUF (within quantized-activation noise), and the
    scored spans are exactly the turns' text plus the end-of-turn token."""
    import torch
    from transformers import AutoModelForCausalLM

    from hybridtune.llm.llamacpp import LlamaCppBackend, _split_pieces

    be = LlamaCppBackend(EndpointConfig(model="smollm2", n_ctx=512, n_threads=2), "local")
    out = asyncio.run(be.token_logprobs(DIALOGUE, "smollm2"))
    assert len(out) == 2
    for turn, msg in zip(out, [DIALOGUE[2], DIALOGUE[4]], strict=True):
        assert "".join(turn.tokens) == msg["content"] + "<|im_end|>"
    llm = be.scoring_llama
    ids, spans = [], []
    for text, target in _split_pieces(llm, DIALOGUE):
        toks = llm.tokenize(text.encode(), add_bos=not ids, special=True)
        if target:
            spans.append((len(ids), len(ids) + len(toks)))
        ids += toks
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    for (a, b), turn in zip(spans, out, strict=True):
        want = np.array([ref[i - 1, ids[i]].item() for i in range(a, b)])
        got = np.array(turn.logprobs)
        assert abs(got.mean() - want.mean()) < 0.05  # the turn's mean NLL, what the stage reports
        assert np.abs(got - want).mean() < 0.15 and np.corrcoef(got, want)[0, 1] > 0.99
    json.dumps([t.logprobs for t in out])  # plain floats
    # a second dialogue sharing the prefix reuses the KV cache and gets the same numbers
    again = asyncio.run(be.token_logprobs(DIALOGUE[:3], "smollm2"))
    assert again[0].tokens == out[0].tokens and np.allclose(again[0].logprobs, out[0].logprobs, atol=1e-4)
    other = asyncio.run(be.token_logprobs([DIALOGUE[0], DIALOGUE[3], DIALOGUE[4]], "smollm2"))
    fresh = LlamaCppBackend(EndpointConfig(model="smollm2", n_ctx=512, n_threads=2), "fresh")
    want = asyncio.run(fresh.token_logprobs([DIALOGUE[0], DIALOGUE[3], DIALOGUE[4]], "smollm2"))
    assert "".join(other[0].tokens) == DIALOGUE[4]["content"] + "<|im_end|>"
    assert np.allclose(other[0].logprobs, want[0].logprobs, atol=1e-4)  # diverging after the system prompt
