"""Prompt-state reuse in the embedded backend (hybridtune/llm/prefix.py).

Fast: batch cutting, the byte-limited state store, distinct-token counting. With the real
embedded model: interleaved conversations read fewer tokens with reuse and reply exactly as
without it; the stages (synth, simulate, score, likelihood) write identical records with
reuse on and off at a fixed seed.

    PYTHONPATH=$PWD .venv/bin/python -m pytest -q tests/test_prefix_reuse.py
"""
from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest

from hybridtune.llm.prefix import PrefixSet, StateStore, ThreadChoice, batches


def test_batches_never_leave_a_short_tail():
    assert batches(0, 10, 512, 8) == [(0, 10)]
    assert batches(0, 1025, 512, 8) == [(0, 512), (512, 1017), (1017, 1025)]
    assert batches(100, 700, 512, 8) == [(100, 612), (612, 700)]
    assert all(b - a >= 8 for a, b in batches(3, 2000, 64, 8))
    assert batches(5, 5, 512, 8) == []


def test_state_store_keeps_to_its_byte_limit_and_drops_dominated_states():
    st = StateStore(limit=100)
    a = np.arange(10, dtype=np.intc)
    st.put(a[:4], b"x" * 30)
    st.put(a, b"y" * 40)  # extends the first state: the first can serve nothing the second cannot
    assert len(st.items) == 1 and st.bytes == 40
    other = np.arange(50, 60, dtype=np.intc)
    st.put(other, b"z" * 50)
    key, n = st.best(np.concatenate([a[:7], other]))
    assert n == 7 and st.get(key).blob.startswith(b"y")  # get() marks it recently used
    st.put(np.arange(90, 95, dtype=np.intc), b"w" * 40)  # over the limit: the least recently used goes
    assert st.bytes <= 100 and st.peak_bytes <= 100
    assert st.best(other)[1] == 0  # `other` was least recently used (a was just looked up)
    st.put(np.arange(5, dtype=np.intc), b"v" * 101)  # bigger than the whole store: not kept
    assert st.bytes <= 100


def test_prefix_set_counts_tokens_never_seen_as_a_prefix():
    ps = PrefixSet()
    assert ps.add([1, 2, 3, 4]) == 4
    assert ps.add([1, 2, 3, 9, 9]) == 2
    assert ps.add([1, 2]) == 0
    assert ps.add([2, 3]) == 2  # same tokens at another position are new


def test_thread_choice_follows_the_faster_count_and_keeps_checking_the_other():
    tc = ThreadChoice([2, 1])
    assert tc.pick() == 1  # each count is tried first
    tc.add(1, 0.2, tokens=10)  # 0.02 s per token
    assert tc.pick() == 2
    for _ in range(40):
        tc.add(2, 0.01)
    picks = [tc.pick() for _ in range(2 * ThreadChoice.EXPLORE)]
    assert picks.count(1) == 2 and picks.count(2) == len(picks) - 2  # the slower count, now and then
    for _ in range(100):  # the machine got busy: two threads now wait for each other
        tc.add(2, 0.08)
    assert tc.pick() == 1


# -- the real embedded model -------------------------------------------------------------

@pytest.mark.model
def test_generation_threads_do_not_change_outputs():
    from hybridtune.llm.llamacpp import find_gguf
    from hybridtune.llm.prefix import ReusingLlama

    prompt = "The counselor listened and asked what went through her mind when"
    outs = []
    for n in (1, None):  # None: chosen per call by measurement: 1 thread, then all cores, then the faster
        llm = ReusingLlama(model_path=str(find_gguf("smollm2")), n_ctx=512, threads=n, reuse=False, verbose=False)
        outs.append([llm.create_completion(prompt, max_tokens=16, temperature=0.8, seed=s)["choices"][0]["text"]
                     for s in (1, 2, 3)])
        if n is None and (os.cpu_count() or 1) > 1:  # both counts were timed, for both kinds of work
            assert all(set(c._tokens) == {1, os.cpu_count()} for c in (llm.gen_threads, llm.batch_threads))
    assert outs[0] == outs[1]


def _backend(reuse: bool, state_mib: int = 64):
    from hybridtune.llm.config import EndpointConfig
    from hybridtune.llm.llamacpp import LlamaCppBackend

    return LlamaCppBackend(EndpointConfig(n_ctx=2048, prefix_reuse=reuse, state_cache_mib=state_mib), "local")


def _interleaved(be) -> tuple[list[str], list[tuple[int, int]]]:
    """Two conversations and a rubric-style prompt, alternating, each turn extending its own history."""
    from hybridtune.llm.base import ChatRequest

    sys_a = "You are a calm counselor. Answer in one short sentence. " * 6
    sys_b = "You are a worried client talking to a counselor. Answer in one short sentence. " * 5
    conv = {"a": [{"role": "system", "content": sys_a}, {"role": "user", "content": "I keep failing my exams."}],
            "b": [{"role": "system", "content": sys_b}, {"role": "user", "content": "How was your week?"}]}
    texts, work = [], []
    for turn in range(2):
        for name in ("a", "b"):
            req = ChatRequest(messages=conv[name], model="smollm2", temperature=0.7, max_tokens=12, seed=7 + turn)
            comp = asyncio.run(be.complete(req))
            texts.append(comp.text)
            work.append((comp.prompt_tokens, comp.evaluated_tokens))
            conv[name] += [{"role": "assistant", "content": comp.text}, {"role": "user", "content": f"Go on ({turn})."}]
        judge = [{"role": "system", "content": sys_a}, {"role": "user", "content": f"Rate turn {turn} from 1 to 10."}]
        comp = asyncio.run(be.complete(ChatRequest(messages=judge, model="smollm2", temperature=0.0, max_tokens=4)))
        texts.append(comp.text)
        work.append((comp.prompt_tokens, comp.evaluated_tokens))
    return texts, work


@pytest.mark.model
def test_interleaved_calls_read_less_and_reply_the_same():
    off, on = _backend(False), _backend(True, state_mib=64)
    texts_off, work_off = _interleaved(off)
    texts_on, work_on = _interleaved(on)
    assert texts_on == texts_off
    assert all(e == s for s, e in work_off)  # without reuse every sent token is read
    sent, read = sum(s for s, _ in work_on), sum(e for _, e in work_on)
    assert sent == sum(s for s, _ in work_off)
    assert read < 0.6 * sent, (read, sent)
    assert on.llama.store.peak_bytes <= 64 << 20 and on.llama.store.items  # states were kept, within the limit
    assert on.llama.last.distinct <= on.llama.last.evaluated <= on.llama.last.sent


@pytest.mark.model
def test_a_store_with_room_for_one_state_still_replies_the_same():
    """Defect (cpu-study run: 12 of 24 synthetic sessions lost to KeyError): saving the live
    context evicted the stored state that was about to be restored."""
    off, on = _backend(False), _backend(True, state_mib=4)  # one ~2.5 MiB conversation state fits, two do not
    texts_off, _ = _interleaved(off)
    texts_on, work_on = _interleaved(on)
    assert texts_on == texts_off
    assert on.llama.last.restored or any(e < s for s, e in work_on)  # reuse still happened
    assert on.llama.store.peak_bytes <= 4 << 20


def _seed_inputs(ctx) -> None:
    from hybridtune.records import Message, ModelEntry, Persona, Scenario, Session
    from hybridtune.registry import save_entry

    persona = Persona(id="p1", attributes={"age": "34", "personality": "quiet"},
                      narrative="A nurse who works night shifts and sleeps badly.")
    scenarios = [Scenario(id=f"sc{i}", persona_id="p1", persona=persona, attitude=att, summary=summ, scenario=text)
                 for i, (att, summ, text) in enumerate([
                     ("neutral", "Fear of being fired", "I missed a deadline and keep thinking my manager will fire me."),
                     ("negative", "Loneliness after a move", "I moved to a new city and I think nobody here likes me.")])]
    ctx.store.stage("scenarios").write_records("scenarios.jsonl", scenarios)
    ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", scenarios[:1])
    for v in ctx.cfg.variant_list():  # the declared variants in one process: a model instance each, interleaved
        save_entry(ctx.store, ModelEntry(variant=v.name, backend="llamacpp", model="smollm2", data_hash=v.name))
    held_out = Session(id="h1", source="real", messages=[
        Message(role="user", content="I can't sleep before exams."),
        Message(role="assistant", content="That sounds exhausting. What goes through your mind at night?"),
        Message(role="user", content="That I will fail."),
        Message(role="assistant", content="Let's look at that thought together.")])
    ctx.store.stage("mix").write_records("test_real.jsonl", [held_out])


def _stage_records(make_cfg, reuse: bool) -> dict[str, list]:
    from hybridtune.context import open_run
    from hybridtune.evaluate import likelihood, score, simulate
    from hybridtune.synth import sessions

    cfg = make_cfg(
        f"name=reuse_{reuse}", f"endpoints.local.prefix_reuse={str(reuse).lower()}", "endpoints.local.n_ctx=2048",
        "synth.sessions=2", "synth.min_exchanges=1", "synth.max_exchanges=1", "synth.fewshot=0",
        "synth.annotate_realised=false", "synth.max_regenerations=1", "evaluate.max_turns=2",
        "roles.patient.max_tokens=24", "roles.counselor.max_tokens=24", "roles.judge.max_tokens=60",
        "llm.max_reasks=0", "llm.max_failure_rate=1.0", backend="llamacpp")
    out: dict[str, list] = {}
    with open_run(cfg) as ctx:
        _seed_inputs(ctx)
        for name, fn, files in (("synth", sessions.run, ["sessions.jsonl"]),
                                ("simulate", simulate.run, ["sessions.jsonl"]),
                                ("score", score.run, ["scores.jsonl", "failures.jsonl"]),
                                ("likelihood", likelihood.run, ["sessions.jsonl"])):
            ctx.run_stage(name, fn)
            st = ctx.store.stage(name)
            # a failure record's id hashes the wall clock (context.map_items); everything else must match
            out[name] = [sorted(json.dumps({k: v for k, v in d.items() if not (f == "failures.jsonl" and k == "id")},
                                           sort_keys=True) for d in st.read_dicts(f)) for f in files]
        usage = json.loads(ctx.store.path("usage.json").read_text())["rows"]
    out["_usage"] = usage
    return out


@pytest.mark.model
@pytest.mark.slow
def test_stage_records_identical_with_reuse_on_and_off(make_cfg):
    off = _stage_records(make_cfg, False)
    on = _stage_records(make_cfg, True)
    for stage in ("synth", "simulate", "score", "likelihood"):
        assert on[stage] == off[stage], f"{stage}: records differ with prefix reuse on"
    assert off["synth"][0] and off["simulate"][0] and off["likelihood"][0]
    rows_on = {(r["stage"], r["role"]): r for r in on["_usage"]}
    rows_off = {(r["stage"], r["role"]): r for r in off["_usage"]}
    assert all(r["prompt_tokens_evaluated"] == r["prompt_tokens"] for r in rows_off.values() if r["calls"])
    # the same model calls in both arms (identical requests in flight are computed once, not raced)
    work = ("calls", "cached", "prompt_tokens", "completion_tokens")
    assert {k: [r[x] for x in work] for k, r in rows_on.items()} == {k: [r[x] for x in work] for k, r in rows_off.items()}
    synth_on = [r for (s, _), r in rows_on.items() if s == "synth"]
    assert sum(r["prompt_tokens_evaluated"] for r in synth_on) < 0.6 * sum(r["prompt_tokens"] for r in synth_on)
