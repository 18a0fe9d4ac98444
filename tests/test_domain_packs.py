"""Domain packs: the files a full run needs are declared once (stages.py `needs`), `hybridtune domain
check` lists what a pack lacks, a run refuses an incomplete pack before any stage, and the
sales_coach pack runs the whole pipeline (fake backend, tiny sizes)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridtune.cli import app
from hybridtune.domain import load_domain
from hybridtune.errors import UserError
from hybridtune.llm.fake import schema_example
from hybridtune.pipeline import run_pipeline
from hybridtune.records import ModelEntry, Session
from hybridtune.registry import save_entry
from hybridtune.stages import STAGES, domain_manifest, names, stage_table

from .synth.helpers import responder as synth_responder

ROOT = Path(__file__).resolve().parents[1]
PACKS = ROOT / "hybridtune" / "domains"


def test_every_shipped_pack_is_complete_and_check_names_what_is_missing(tmp_path):
    for pack in ("cbt", "sales_coach"):
        r = CliRunner().invoke(app, ["domain", "check", pack])
        assert r.exit_code == 0 and "complete" in r.output, r.output
    broken = tmp_path / "broken"
    shutil.copytree(PACKS / "sales_coach", broken)
    (broken / "prompts" / "eval_patient.yaml").unlink()
    (broken / "prompts" / "curate_judge.yaml").write_text("version: 1\nsystem: no user key\n")
    r = CliRunner().invoke(app, ["domain", "check", str(broken)])
    assert r.exit_code == 1
    assert "simulate: 1 problem(s)" in r.output and "eval_patient.yaml: missing" in r.output
    assert "curate: 1 problem(s)" in r.output and "curate_judge.yaml" in r.output
    # the manifest covers every stage and takes the configured judge metrics
    man = domain_manifest(["empathy", "warmth"])
    assert set(man) == {*names(), "chat"} and "prompts/eval_judge_warmth.yaml" in man["score"]


def test_run_refuses_an_incomplete_pack_before_any_stage(make_cfg, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(PACKS / "sales_coach", broken)
    (broken / "prompts" / "eval_patient.yaml").unlink()
    cfg = make_cfg(f"domain={broken}")
    with pytest.raises(UserError, match=r"eval_patient\.yaml: missing.*domain check"):
        run_pipeline(cfg)
    assert not (cfg.run_dir / "real" / "_done.json").exists()


SALES_TRANSCRIPT = """\
Coach: Thanks for making time. How did the calls go this week?
Rep: Honestly not great. I had three discovery calls and every one of them went quiet on me after pricing.
Coach: That sounds frustrating. What happened right before the prospect went quiet?
Rep: I think I rushed to the number because I was nervous they would hang up.
Coach: So the worry about losing them pushed you to pricing early. What would you like to try next time?
Rep: Maybe ask two more questions about their budget process first, and slow down.
Coach: Good plan. Let's practise that opening together before your Thursday call.
"""

SECOND_TRANSCRIPT = """\
Coach: Welcome back. What would you like to work on today?
Rep: Follow-up emails. I send one after a demo and then I never hear from the buyer again.
Coach: What does your follow-up usually say?
Rep: Mostly a thank you and the slides, and a line asking if they have questions.
Coach: What could you ask that makes it easy for the buyer to reply?
Rep: Maybe propose a date for the next call instead of asking an open question.
Coach: Try that on the two demos you have this week and tell me what happened.
"""

THIRD_TRANSCRIPT = """\
Coach: Good to see you. Where do you want to start?
Rep: Cold outreach on LinkedIn. Nobody answers my connection notes.
Coach: Read me the last note you sent.
Rep: It says who I am, what we sell, and asks for fifteen minutes.
Coach: What in that note is about the buyer rather than about you?
Rep: Nothing, really. I could mention something from their company news first.
Coach: Write three notes like that tonight and we will compare the replies on Friday.
"""

EVAL_SCENARIOS = """\
- summary: A new rep freezes when a prospect raises the price objection on a renewal call.
  scenario: My biggest renewal asked for a discount and I just said yes without thinking, now my manager is upset with me.
  attitude: anxious but cooperative
- summary: An experienced rep believes cold calling never works for her territory.
  scenario: I have made forty cold calls this month and booked nothing, so I think calling is a waste of my time.
  attitude: resistant
"""


def responder(req):
    """The synth helpers' varied replies; every other structured reply (judge, ratings) is the schema's stand-in."""
    if req.json_schema is not None and req.schema_name not in (
            "PersonaDraft", "PersonaCheck", "Naturalness", "ScenarioDraft", "DistortionCheck", "TechniqueLabels", "Dialogue"):
        return json.dumps(schema_example(req.json_schema))
    return synth_responder(req)


@pytest.mark.slow
def test_sales_coach_runs_the_whole_pipeline(fake_ctx, tmp_path):
    data = tmp_path / "inputs"
    data.mkdir()
    (data / "coaching_call.txt").write_text(SALES_TRANSCRIPT)
    scen = tmp_path / "eval.yaml"
    scen.write_text(EVAL_SCENARIOS)
    ctx_cm, fake = fake_ctx(
        "domain=sales_coach", f"real.inputs=[{data}]", "real.pii.ner=false", "real.llm=false",
        "synth.personas=3", "synth.scenarios_per_persona=1", "synth.sessions=4", "synth.min_exchanges=2",
        "synth.max_exchanges=2", "synth.min_distortions=1", "synth.concurrency=1",
        f"evaluate.scenarios_file={scen}", "evaluate.scenarios=2", "evaluate.max_turns=2",
        "evaluate.bootstrap_resamples=100", "mix.size=4", "mix.allow_smaller=true", "mix.min_test=1",
        "contamination.method=shingles", "curate.threshold=1", "llm.max_failure_rate=1.0",
        responder=responder)
    with ctx_cm as ctx:
        before = run_pipeline(ctx.cfg, ctx=ctx, only=names()[: names().index("mix") + 1])
        for v in ctx.cfg.variant_list():  # the train stage's output, without training (a fake model per variant)
            save_entry(ctx.store, ModelEntry(variant=v.name, backend="fake", model="fake"))
        after = run_pipeline(ctx.cfg, ctx=ctx, only=names()[names().index("simulate"):])
        report = (ctx.store.path("report", "report.md")).read_text()
        unlisted = unlisted_files(ctx)
        synth = list(ctx.store.stage("synth").read("sessions.jsonl", Session))
        simulated = list(ctx.store.stage("simulate").read("sessions.jsonl", Session))
    assert set(before) | set(after) == set(names()) - {"train"}
    assert before["real"]["sessions_out"] == 1 and before["mix"]["eligible"] > 0
    assert synth and all(s.meta["domain"] == "sales_coach" for s in synth)
    assert simulated and after["score"]["scored"] > 0
    dom = load_domain("sales_coach")
    system = [r.messages[0]["content"] for r in fake.requests if r.messages and r.messages[0]["role"] == "system"]
    assert any("sales coaching" in s for s in system) and not any("cognitive behavioural therapy" in s for s in system)
    assert dom.system_prompt.split(".")[0] in "".join(system)
    assert "| Model | Empathy Avg |" in report
    assert not unlisted, f"files the stage table (stages.py `writes`) does not list: {unlisted}"


def unlisted_files(ctx) -> list[str]:
    """Files in each stage folder that its declaration's `writes` (and the docs table) do not name."""
    variants = {v.name for v in ctx.cfg.variant_list()}
    out = []
    for s in STAGES:
        folder = ctx.store.path(s.name)
        listed = stage_table().split(f"| {s.name} |", 1)[1].split("\n", 1)[0]
        for f in (folder.iterdir() if folder.is_dir() else []):
            name = "<variant>/" if f.name in variants else "*.png" if f.suffix == ".png" else f.name + ("/" if f.is_dir() else "")
            if name not in ("_done.json", "failures.jsonl") and not name.startswith(".") and f"`{name}" not in listed:
                out.append(f"{s.name}/{f.name}")
    return out


@pytest.mark.slow
@pytest.mark.model
def test_sales_coach_pipeline_on_embedded_model(make_cfg, tmp_path):
    """Every stage of the sales_coach pack on the real embedded SmolLM2 (llama.cpp; a 2-step LoRA), one
    item each: the pack's prompts, system prompt and own judge metric (next_step, 1-5) work on a real model."""
    from tests.train.conftest import TINY

    data = tmp_path / "inputs"
    data.mkdir()
    (data / "coaching_call.txt").write_text(SALES_TRANSCRIPT)
    (data / "second_call.txt").write_text(SECOND_TRANSCRIPT)  # one held out, two trained on (a unit each):
    (data / "third_call.txt").write_text(THIRD_TRANSCRIPT)    # a training and a validation unit
    scen = tmp_path / "eval.yaml"
    scen.write_text(EVAL_SCENARIOS.split("- summary: An experienced")[0])  # one scenario
    cfg = make_cfg(
        "domain=sales_coach", f"real.inputs=[{data}]", "real.pii.ner=false", "real.llm=false",
        "synth.personas=1", "synth.scenarios_per_persona=1", "synth.sessions=1", "synth.persona_checks=false",
        "synth.scenario_checks=false", "synth.annotate_realised=false", "synth.min_exchanges=1",
        "synth.max_exchanges=1", "synth.max_regenerations=1", "llm.max_reasks=1", "llm.max_failure_rate=1",
        "roles.generator.max_tokens=200", "roles.patient.max_tokens=32", "roles.counselor.max_tokens=32",
        "roles.judge.max_tokens=160", "roles.judge.temperature=0", "endpoints.local.n_ctx=2048",
        "curate.threshold=1", "curate.max_tokens=320", "variants={coached: {sources: [real]}}",
        "mix.size=4", "mix.allow_smaller=true", "mix.include_pending=true", "mix.min_test=1",
        "contamination.method=shingles", f"evaluate.scenarios_file={scen}", "evaluate.max_turns=1",
        "evaluate.metrics=[next_step]", "evaluate.bootstrap_resamples=100",
        "evaluate.trust.likelihood_sessions=1", "evaluate.trust.likelihood_turns=1", "evaluate.trust.calib_items=2",
        "evaluate.trust.degradations=[shuffled]",
        "evaluate.trust.calib_samples=1", "evaluate.trust.calib_context=2", "evaluate.trust.simcheck_sessions=1",
        "evaluate.trust.simcheck_turns=1", *TINY, backend="llamacpp")
    summaries = run_pipeline(cfg)
    runs = cfg.run_dir
    assert set(summaries) == set(names()) and all((runs / s / "summary.json").is_file() for s in names())
    assert json.loads((runs / "models.json").read_text())["coached"]["adapter"]  # a real LoRA adapter
    simulated = [Session.model_validate_json(x) for x in (runs / "simulate" / "sessions.jsonl").read_text().splitlines()]
    assert simulated and all(s.messages[0].content == load_domain("sales_coach").system_prompt for s in simulated)
    score = json.loads((runs / "score" / "summary.json").read_text())
    def lines(f):
        return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []

    scores, failures = lines(runs / "score" / "scores.jsonl"), lines(runs / "score" / "failures.jsonl")
    # the pack's metric: each judgment a valid 1-5 score or a recorded failure (a 135M judge often fails), never invented
    assert score["metrics"] == ["next_step"] and score["scored"] + score["failed"] == score["judgments"] >= 1
    assert len(scores) == score["scored"] and len(failures) == score["failed"]
    assert all(x["metric"] == "next_step" and 1 <= x["score"] <= 5 and x["prompt"] == "eval_judge_next_step@1"
               for x in scores)
    assert "| Model | Next step Avg |" in (runs / "report" / "report.md").read_text()


@pytest.mark.slow
def test_train_seeds_run_through_the_pipeline_and_pool_in_the_report(fake_ctx, tmp_path):
    """train.seeds: every seed's model is simulated, scored and scored for likelihood, and the
    report pools them into their declared variant (the scenario and session stay the units)."""
    import json

    data = tmp_path / "inputs"
    data.mkdir()
    (data / "coaching_call.txt").write_text(SALES_TRANSCRIPT)
    scen = tmp_path / "eval.yaml"
    scen.write_text(EVAL_SCENARIOS)
    ctx_cm, _ = fake_ctx(
        "domain=sales_coach", f"real.inputs=[{data}]", "real.pii.ner=false", "real.llm=false",
        "synth.personas=3", "synth.scenarios_per_persona=1", "synth.sessions=4", "synth.min_exchanges=2",
        "synth.max_exchanges=2", "synth.min_distortions=1", "synth.concurrency=1",
        f"evaluate.scenarios_file={scen}", "evaluate.scenarios=2", "evaluate.max_turns=2",
        "evaluate.bootstrap_resamples=100", "mix.size=4", "mix.allow_smaller=true", "mix.min_test=1",
        "contamination.method=shingles", "curate.threshold=1", "llm.max_failure_rate=1.0", "train.seeds=[1, 2]",
        responder=responder)
    with ctx_cm as ctx:
        run_pipeline(ctx.cfg, ctx=ctx, only=names()[: names().index("mix") + 1])
        models = [v.name for v in ctx.cfg.variant_list()]
        for name in models:
            save_entry(ctx.store, ModelEntry(variant=name, backend="fake", model="fake"))
        after = run_pipeline(ctx.cfg, ctx=ctx, only=names()[names().index("simulate"):])
        summary = json.loads(ctx.store.path("report", "summary.json").read_text())
        lik = ctx.store.stage("likelihood").read_summary()
        mixed = {p.name for p in ctx.store.path("mix").iterdir() if p.is_dir()}
    assert models == ["base", "real", "real~s2", "hybrid", "hybrid~s2"] and {"real~s2", "hybrid~s2"} <= mixed
    assert after["simulate"]["variants"] == models
    assert summary["variants"] == ["base", "real", "hybrid"]
    assert summary["comparisons"] and all(len(c["seed_estimates"]) == 2 for c in summary["comparisons"])
    assert set(lik["skipped"]) == set(models)  # the fake backend has no log-probabilities: every model is tried
