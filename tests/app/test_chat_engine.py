"""Chat engine and terminal chat: safety layer on every turn, streaming, history budget,
/save /reset /quit, registered variants, and `hybridtune chat` fed through a pipe."""
from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys

import pytest

from hybridtune.app.engine import ChatEngine, open_engine
from hybridtune.app.terminal import run_terminal
from hybridtune.errors import UserError
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.records import ModelEntry, Session
from hybridtune.registry import save_entry
from hybridtune.store import RunStore


class WordStream(FakeBackend):
    """A fake that streams its reply word by word (and can fail mid-stream)."""

    async def stream(self, req):
        text = (await self.complete(req)).text
        for w in text.split(" "):
            if w == "BOOM":
                raise RuntimeError("stream broke")
            yield w + " "


def _engine(make_cfg, *overrides, replies=(), variant=None) -> tuple[ChatEngine, FakeBackend]:
    cfg = make_cfg(*overrides)
    pool = LLMPool(cfg.pool_config())
    fake = WordStream.with_replies(list(replies))
    pool.install("local", fake)
    return open_engine(cfg, variant, pool=pool), fake


async def _turn(engine, text):
    return [ev async for ev in engine.turn(text)]


def test_normal_turn_streams_and_crisis_turn_is_replaced(make_cfg):
    eng, fake = _engine(make_cfg, "safety.use_model=false", replies=["I hear that work has been hard."])
    evs = asyncio.run(_turn(eng, "Work has been really hard lately."))
    assert [e.type for e in evs].count("token") == 7 and evs[-1].type == "done" and evs[-1].risk == "none"
    assert "".join(e.text for e in evs).strip() == "I hear that work has been hard." == eng.messages[-1].content
    evs = asyncio.run(_turn(eng, "I want to kill myself tonight."))
    assert [e.type for e in evs] == ["safety", "done"] and "988" in evs[0].text and evs[-1].risk == "imminent"
    assert len(fake.requests) == 1  # the counselor was not asked for the crisis turn
    assert [m.role for m in eng.messages] == ["user", "assistant", "user", "assistant"]
    assert "988" in eng.messages[-1].content
    ev = json.loads(eng.out.file("safety_events.jsonl").read_text())
    assert ev["kind"] == "crisis" and ev["where"] == "chat" and "tonight" not in json.dumps(ev["detail"])


def test_prefix_mode_keeps_the_counselor_reply_after_the_safe_response(make_cfg):
    eng, fake = _engine(make_cfg, "safety.use_model=false", "safety.response_mode=prefix", replies=["I'm here with you."])
    evs = asyncio.run(_turn(eng, "I want to die"))
    assert evs[0].type == "safety" and any(e.type == "token" for e in evs)
    assert eng.messages[-1].content.startswith("I'm really glad") and eng.messages[-1].content.endswith("I'm here with you.")


def test_model_failure_mid_stream_is_reported_and_chat_goes_on(make_cfg):
    eng, _ = _engine(make_cfg, "safety.use_model=false", replies=["partial BOOM rest", "second answer"])
    evs = asyncio.run(_turn(eng, "hello"))
    assert any(e.type == "error" for e in evs) and evs[-1].type == "done"
    evs = asyncio.run(_turn(eng, "are you there?"))
    assert "".join(e.text for e in evs if e.type == "token").strip() == "second answer"


def test_screen_model_failure_is_degraded_not_none(make_cfg):
    eng, _ = _engine(make_cfg, "llm.max_reasks=0", "safety.use_model=true", "safety.learned=false",
                     replies=[RuntimeError("judge down"), "ok."])
    evs = asyncio.run(_turn(eng, "I'm not suicidal, just hopeless"))
    assert evs[-1].risk == "low"
    ev = json.loads(eng.out.file("safety_events.jsonl").read_text())
    assert ev["kind"] == "degraded" and eng.turn_risks[0]["source"] == "degraded"


def test_history_is_trimmed_to_the_context_budget(make_cfg):
    eng, fake = _engine(make_cfg, "safety.use_model=false", "endpoints.local.n_ctx=1024", "roles.counselor.max_tokens=64")
    for i in range(12):
        asyncio.run(_turn(eng, f"message {i} " + "about my week " * 20))
    sent = fake.requests[-1].messages
    assert sent[0]["role"] == "system" and sent[1]["role"] == "user" and sent[-1]["content"].startswith("message 11")
    assert len(sent) < 1 + 2 * 12  # oldest turns dropped
    assert sum(len(m["content"]) for m in sent) / 3 <= eng.budget()
    assert len(eng.messages) == 24  # the saved history keeps everything


def test_variant_from_registry_and_unknown_variant(make_cfg):
    cfg = make_cfg("safety.use_model=false")
    save_entry(RunStore(cfg.run_dir), ModelEntry(variant="hybrid", backend="fake", model="fake"))
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend())
    assert open_engine(cfg, "hybrid", pool=pool).variant == "hybrid"
    with pytest.raises(UserError, match="known variants: hybrid"):
        open_engine(cfg, "nope", pool=pool)


def test_terminal_commands_save_reset_quit(make_cfg):
    eng, _ = _engine(make_cfg, "safety.use_model=false", replies=["one.", "two.", "three."])
    inp = io.StringIO("hi\n/save\n/reset\n\n/bogus\nagain\n" + "y" * 5000 + "\n/quit\nnever read\n")
    out = io.StringIO()
    turns = asyncio.run(run_terminal(eng, inp, out))
    text = out.getvalue()
    assert turns == 2 and "not a substitute for professional care" in text
    assert "(conversation reset)" in text and "unknown command /bogus" in text and "message not sent" in text
    saved = [Session.model_validate_json(x) for x in eng.out.file("sessions.jsonl").read_text().splitlines()]
    assert len(saved) == 1  # /save; the unsaved conversation is not written on /quit unasked
    assert [m.content for m in saved[0].messages if m.role == "user"] == ["hi"]
    assert "(not saved; /save before /quit" in text


def test_hybridtune_chat_through_a_pipe(tmp_path):
    """The real CLI, stdin piped: a normal turn, a crisis turn, /save, end of input."""
    msgs = "I've been anxious about work.\nI'm going to kill myself tonight, I have the pills.\n/save\n"
    p = subprocess.run(
        [sys.executable, "-m", "hybridtune.cli", "chat", "--set", "endpoints.local.backend=fake",
         "--set", f"runs_dir={tmp_path}", "--set", "safety.use_model=false"],
        input=msgs, capture_output=True, text=True, timeout=300,  # the safety screen's learned layer loads torch
    )
    assert p.returncode == 0, p.stderr
    assert "I hear you" in p.stdout and "988 Suicide & Crisis Lifeline" in p.stdout and "saved session" in p.stdout
    [s] = [Session.model_validate_json(x) for x in (tmp_path / "demo" / "chat" / "sessions.jsonl").read_text().splitlines()]
    assert s.messages[0].role == "system" and len(s.messages) == 5
    assert [t["risk"] for t in s.meta["safety"]] == ["none", "imminent"]
    assert (tmp_path / "demo" / "chat" / "safety_events.jsonl").exists()


def test_yes_to_the_safety_question_keeps_the_crisis(make_cfg):
    eng, fake = _engine(make_cfg, "safety.use_model=false", replies=["Glad to hear it.", "Tell me more."])
    asyncio.run(_turn(eng, "I want to kill myself"))
    evs = asyncio.run(_turn(eng, "yes"))
    assert evs[0].type == "safety" and evs[-1].risk == "high" and fake.requests == []
    # confirmed: the risk stays raised, while the counselor answers turns with no new flag
    evs = asyncio.run(_turn(eng, "I'm ok now, thanks for listening, I'll call my sister"))
    assert evs[-1].risk == "high" and evs[-1].action == "none" and evs[0].type == "token"
    eng.reset()
    evs = asyncio.run(_turn(eng, "yes"))  # a new conversation, no crisis before: a plain yes
    assert evs[-1].risk == "none" and evs[-1].action == "none"


@pytest.mark.parametrize("reply,cut", [("I hear you.", False), ("Is that so?", False), ('She said "stop."', False),
                                       ("Let's try (slowly).", False), ("I hear you. And then the", True),
                                       ("Here are three steps:", True), ("", False)])
def test_a_reply_that_stops_mid_sentence_is_seen_as_cut(reply, cut):
    from hybridtune.app.engine import unfinished

    assert unfinished(reply) is cut


def test_terminal_names_the_variant_and_model_and_marks_a_cut_reply(make_cfg):
    """The chat never said which model answered, and a reply stopped at max_tokens ended mid-word
    with no marker."""
    cfg = make_cfg("safety.use_model=false")
    save_entry(RunStore(cfg.run_dir), ModelEntry(variant="hybrid", backend="fake", model="qwen-7b",
                                                 adapter="runs/x/train/hybrid/adapter"))
    pool = LLMPool(cfg.pool_config())
    fake = WordStream.with_replies(["I hear you. Work has been a lot and the", "That makes sense."])
    pool.install("local", fake)
    eng = open_engine(cfg, "hybrid", pool=pool)
    out = io.StringIO()
    asyncio.run(run_terminal(eng, io.StringIO("hi\nok\n/quit\n"), out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "[hybrid] talking to variant hybrid, model qwen-7b + LoRA adapter runs/x/train/hybrid/adapter"
    first = next(x for x in lines if "Work has been" in x)
    assert first.endswith("and the  [… cut off mid-sentence at the reply length limit, roles.counselor.max_tokens]")
    second = next(x for x in lines if "That makes sense." in x)
    assert "cut off" not in second
    assert eng.messages[1].content == "I hear you. Work has been a lot and the"  # the record keeps what the model said
