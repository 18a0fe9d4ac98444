"""The learned layer on the real shipped embedder and head: it catches held-out crisis statements
the rules miss, a person's risk is the maximum over turns and windows, a broken layer is
`degraded` (never "no risk"), and `serve` gives the safe response for a sentence only the
learned layer flags (HTTP, FastAPI TestClient)."""
from __future__ import annotations

import asyncio
import json

from fastapi.testclient import TestClient

from hybridtune.app.engine import open_engine
from hybridtune.app.web import create_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.records import Session
from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.learned import load_learned
from hybridtune.safety.rules import rule_screen
from hybridtune.safety.screen import Screener, screen_session
from scripts.learned_train import POSITIVE, load_statements

# An indirect disclosure with no phrase the rules know (asserted below); not in the labelled set.
ONLY_LEARNED = "Nobody is going to miss me when I'm gone, and I'm going soon."


def test_learned_layer_catches_held_out_crises_the_rules_miss():
    held = [r for r in load_statements() if r["split"] == "test" and r["level"] in POSITIVE]
    missed = [r["text"] for r in held if not rule_screen(r["text"]).is_crisis]
    assert len(missed) >= 20  # the rules miss many of the written phrasings...
    res = asyncio.run(Screener(SafetyConfig()).screen_many(missed))
    caught = [r for r in res if r.is_crisis]
    assert len(caught) / len(missed) >= 0.6, (len(caught), len(missed))  # ...the learned layer catches most
    assert all(r.source == "learned" and "learned" in r.layers and r.categories == ["suicide"] for r in caught)


def test_ordinary_talk_stays_none_and_scores_are_recorded():
    r = asyncio.run(Screener(SafetyConfig()).screen("We talked about cutting down on coffee after lunch."))
    assert r.risk == "none" and r.layers == ["rules", "learned"] and 0 <= r.scores["learned"] < 0.5


def test_person_risk_is_max_over_turns_and_windows():
    post = ("Work was long today and the commute was awful. My sister called about the holidays. "
            "We argued about who hosts this year. I made pasta and watched a film. " * 3 + ONLY_LEARNED)
    s = Session(id="p", source="real", messages=[
        {"role": "user", "content": "Hi, thanks for seeing me."},
        {"role": "assistant", "content": "Of course. What brings you here?"},
        {"role": "user", "content": post},
    ])
    assert load_learned().score([post])[0].n_windows > 1
    r = screen_session(s)
    assert r.is_crisis and r.model_extra["turns"] == [2] and "learned" in r.layers
    assert not screen_session(s, SafetyConfig(learned=False)).is_crisis


def test_safety_check_reports_the_layers_that_ran(tmp_path):
    from typer.testing import CliRunner

    from hybridtune.cli import app

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                           for i, t in enumerate(["I slept badly this week.", ONLY_LEARNED])))
    res = CliRunner().invoke(app, ["safety", "check", str(src), "--out", str(out), "--set", f"runs_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["layers"] == {"rules": 2, "learned": 2}  # the embedded default: no provider, rubric off
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["risk"] == "none" and rows[1]["risk"] in ("high", "imminent") and rows[1]["source"] == "learned"
    assert rows[1]["layers"] == ["rules", "learned"] and rows[1]["scores"]["learned"] > rows[0]["scores"]["learned"]


def test_broken_learned_layer_is_degraded_never_none(tmp_path):
    bad = tmp_path / "head.json"
    bad.write_text("{}")
    r = asyncio.run(Screener(SafetyConfig(learned_head=str(bad))).screen("I had a quiet weekend."))
    assert r.source == "degraded" and r.risk == "low" and r.model_extra["degraded"] == ["learned"]


def test_serve_checks_in_when_only_the_learned_layer_flags_and_a_yes_gets_the_safe_response(make_cfg, tmp_path):
    assert rule_screen(ONLY_LEARNED).risk == "none"
    cfg = make_cfg("safety.use_model=false")  # the default CPU screen: rules + learned layer
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend.with_replies(["That sounds like a lot."]))
    base = open_engine(cfg, pool=pool)
    client = TestClient(create_app(base.fork, max_chars=cfg.safety.max_chars), base_url="http://127.0.0.1")

    def say(text):
        r = client.post("/api/chat", json={"session": "learned-session-1", "message": text})
        assert r.status_code == 200
        return [json.loads(line[5:]) for line in r.text.split("\n\n") if line.startswith("data:")]

    evs = say(ONLY_LEARNED)
    assert evs[0]["type"] == "safety" and evs[0]["action"] == "check_in" and "thoughts of ending your life" in evs[0]["text"]
    assert "988" not in evs[0]["text"] and evs[-1]["type"] == "done" and evs[-1]["risk"] == "high"
    events = [json.loads(x) for x in base.out.file("safety_events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "check_in" and events[-1]["source"] == "learned"
    evs = say("yes")
    assert evs[0]["action"] == "crisis_reply" and "988" in evs[0]["text"] and evs[-1]["risk"] in ("high", "imminent")
    events = [json.loads(x) for x in base.out.file("safety_events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "crisis"


def test_a_chat_turn_is_scored_on_one_thread_with_the_vectors_of_a_batch():
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    from hybridtune.embed import default_embedder, embed
    from hybridtune.safety.learned import one_thread

    texts = ["I slept badly this week.", ONLY_LEARNED, ""]
    n = torch.get_num_threads()
    with one_thread():  # what LearnedLayer.score wraps a turn in: torch and the BLAS on one thread
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        X = default_embedder().forward(texts)
    assert torch.get_num_threads() == n  # the rest of the process keeps its threads
    assert np.allclose(X, embed(texts), atol=1e-5)  # the direct forward gives encode()'s vectors
