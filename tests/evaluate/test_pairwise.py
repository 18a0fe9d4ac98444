"""Pairwise judging (evaluate/pairwise.py): units of one shared client turn, both orders asked,
position bias cancelled, win rates with CIs, and the score stage running it."""
from __future__ import annotations

import asyncio
import json

import pytest

from hybridtune.evaluate import pairwise
from hybridtune.evaluate.pairwise import PairJudgment, analyze, units
from hybridtune.meta import SimMeta
from hybridtune.records import Message, Session


def sim(variant: str, scen: str, reply: str, opening: str = "I can't sleep since the move.") -> Session:
    msgs = [Message(role="system", content="sys"), Message(role="user", content=opening),
            Message(role="assistant", content=reply), Message(role="user", content=f"later {variant}")]
    return Session(id=f"{variant}-{scen}", source="simulated", messages=msgs,
                   meta=SimMeta(variant=variant, scenario_id=scen).dump())


def sessions() -> list[Session]:
    good = "It sounds like the move has left you exhausted and unsettled."
    return [s for i in range(4) for s in (sim("hybrid", f"sc{i}", good + f" ({i})"), sim("base", f"sc{i}", f"OK. {i}"),
                                          sim("real", f"sc{i}", f"Try melatonin {i}."))]


def test_units_share_the_client_turn_and_hold_each_reply():
    us = units([*sessions(), sim("base", "lonely", "x")])  # one variant only: no comparison
    assert len(us) == 4 and all(set(u.replies) == {"base", "hybrid", "real"} for u in us)
    assert [m.content for m in us[0].context] == ["I can't sleep since the move."]
    assert len(pairwise.tasks(us)) == 12
    # openings that differ between variants share nothing: no unit
    assert units([sim("a", "s", "r1", "hello"), sim("b", "s", "r2", "hi")]) == []


def j(unit: str, a: str, b: str, first: str, winner: str) -> PairJudgment:
    return PairJudgment(id=f"{unit}{first}", unit=unit, a=a, b=b, first=first, winner=winner, judge_model="m", prompt="p")


def test_position_bias_cancels_and_win_rates():
    # a judge that always picks reply A: each unit's two orders disagree -> 0.5, a tie
    biased = [j(f"u{i}", "a", "b", first, first) for i in range(5) for first in ("a", "b")]
    r = analyze(biased)
    assert r["pairs"][0]["win_rate_a"] == 0.5 and r["pairs"][0]["order_agreement"] == 0.0
    assert r["first_position_wins"] == 1.0
    # a consistent judge: a wins 4 units in both orders, b wins 1 -> 0.8
    cons = [j(f"u{i}", "a", "b", first, "a" if i < 4 else "b") for i in range(5) for first in ("a", "b")]
    r = analyze(cons, resamples=500)["pairs"][0]
    assert r["win_rate_a"] == 0.8 and r["order_agreement"] == 1.0 and r["units"] == 5
    assert r["ci"][0] <= 0.8 <= r["ci"][1] and r["ci"][1] <= 1.0


def test_score_stage_asks_both_orders(fake_ctx):
    from hybridtune.evaluate import score

    def judge(req) -> str:
        if req.schema_name == "PairChoice":
            text = req.messages[-1]["content"]
            a = text.split("Reply A:")[1].split("Reply B:")[0]
            b = text.split("Reply B:")[1]
            better = "A" if "sounds like" in a else "B" if "sounds like" in b else "tie"
            return json.dumps({"rationale": "r", "better": better})
        return json.dumps({"rationale": "r", "score": 6})

    cm, fake = fake_ctx("evaluate.metrics=[empathy]", responder=judge)
    with cm as ctx:
        st = ctx.store.stage("simulate")
        ss = sessions()
        st.write_records("sessions.jsonl", ss)
        ctx.run_stage("score", score.run)
        summ = ctx.store.stage("score").read_summary()
        js = list(ctx.store.stage("score").read("pairwise.jsonl", PairJudgment))
    pw = summ["pairwise"]
    assert pw["ran"] and pw["units"] == 4 and pw["planned"] == 24 and len(js) == 24 and pw["failed"] == 0
    assert {(x.a, x.b, x.first) for x in js if x.unit == js[0].unit} == {
        ("base", "hybrid", "base"), ("base", "hybrid", "hybrid"), ("base", "real", "base"), ("base", "real", "real"),
        ("hybrid", "real", "hybrid"), ("hybrid", "real", "real")}
    rates = {(p["a"], p["b"]): p["win_rate_a"] for p in pw["pairs"]}
    assert rates[("base", "hybrid")] == 0.0 and rates[("hybrid", "real")] == 1.0 and rates[("base", "real")] == 0.5
    asked = [q for q in fake.requests if q.schema_name == "PairChoice"]
    assert "I can't sleep since the move." in asked[0].messages[-1]["content"]


def test_pairwise_off_says_so(fake_ctx):
    cm, _ = fake_ctx("evaluate.pairwise=false")
    with cm as ctx:
        res = asyncio.run(pairwise.run(ctx, ctx.store.stage("score"), sessions()))
    assert res == {"ran": False, "note": "evaluate.pairwise is off"}


@pytest.mark.parametrize("pack", ["cbt", "sales_coach"])
def test_pairwise_prompt_is_versioned_in_each_pack(make_cfg, pack):
    from hybridtune.domain import load_domain

    tpl = load_domain(pack).prompt(pairwise.PROMPT)
    msgs = tpl.render(transcript="Client: hi", reply_a="AAA", reply_b="BBB")
    assert tpl.tag == "eval_judge_pairwise@1" and "AAA" in msgs[-1]["content"] and "BBB" in msgs[-1]["content"]


def test_dry_run_estimate_counts_pairwise_and_expert_calls(make_cfg, tmp_path):
    from hybridtune.estimate import estimate

    from .test_judge_experts import TOPICS, write_annomi

    path = write_annomi(tmp_path / "AnnoMI-simple.csv", TOPICS)
    base = ["evaluate.trust.experts=null"]
    off = estimate(make_cfg(*base, path="configs/demo.yaml")).by_stage()
    on = estimate(make_cfg(*base, "evaluate.pairwise=true", path="configs/demo.yaml")).by_stage()
    # demo: 4 scenarios, 4 variants -> 6 pairs x 2 orders per scenario
    assert on["score"]["calls"] - off["score"]["calls"] == 4 * 12
    ex = estimate(make_cfg(f"evaluate.trust.experts={path}", "evaluate.trust.expert_pairs=3",
                           path="configs/demo.yaml")).by_stage()
    assert ex["calibrate"]["calls"] - off["calibrate"]["calls"] == 2 * 3 * 2  # 3 pairs x 2 metrics, k=1


@pytest.mark.model
def test_pairwise_on_the_embedded_judge(make_cfg):
    """The pairwise prompt and schema on the real embedded SmolLM2 (llama.cpp, grammar-constrained):
    both orders are asked and each answer is a valid choice (a 135M model's preferences mean nothing)."""
    from hybridtune.context import open_run

    cfg = make_cfg("roles.judge.max_tokens=80", "roles.judge.temperature=0", "llm.max_failure_rate=1.0",
                   backend="llamacpp")
    with open_run(cfg) as ctx:
        us = units([sim("hybrid", "sc0", "It sounds like the move has left you exhausted."), sim("base", "sc0", "OK.")])
        js = asyncio.run(pairwise.judge(ctx, ctx.store.stage("score"), us))
        failed = list(ctx.store.stage("score").read_dicts("failures.jsonl"))
        asyncio.run(ctx.llms.aclose())
    assert len(js) + len(failed) == 2 and js  # grammar-constrained: the schema's answers parse
    assert {j.first for j in js} <= {"base", "hybrid"} and all(j.winner in ("base", "hybrid", "tie") for j in js)
