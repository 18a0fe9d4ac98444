"""Each extension point is a registry: adding a member is one class (or one declaration), it is
then used end to end, and a second member under a taken name is refused.
The recipes these tests follow are in docs/architecture.md ("Adding things")."""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridtune.cli import app
from hybridtune.domain import load_domain
from hybridtune.errors import UserError
from hybridtune.evaluate import report, score, simulate
from hybridtune.evaluate.metrics import METRICS, Metric
from hybridtune.llm import BACKENDS, Backend, ChatRequest, Completion, register
from hybridtune.real.config import RealConfig
from hybridtune.real.formats import READERS, RawSession, RawTurn, Reader, detect, label_role
from hybridtune.records import ModelEntry, Scenario
from hybridtune.registry import save_entry

ROOT = Path(__file__).resolve().parents[1]


# -- an ingest format: one Reader class ------------------------------------------------------
def test_new_ingest_format_is_one_class(tmp_path):
    class PipeReader(Reader):  # "Speaker|text" lines in .psv files
        name, suffixes = "psv-test", (".psv",)

        @classmethod
        def read(cls, text: str, file: str, cfg: RealConfig) -> Iterator[RawSession]:
            turns = [RawTurn(speaker=s, text=t, role=label_role(s), line=n)
                     for n, (s, t) in enumerate((ln.split("|", 1) for ln in text.splitlines() if "|" in ln), 1)]
            yield RawSession(key="0", file=file, format=cls.name, turns=turns, line=1)

    try:
        src = tmp_path / "in"
        src.mkdir()
        (src / "a.psv").write_text("\n".join(
            f"{'Therapist' if i % 2 == 0 else 'Client'}|{'What brings you here today, and how are you feeling about it?' if i % 2 == 0 else 'I have been anxious about work for weeks and I cannot sleep well at night.'} {i}"
            for i in range(12)) + "\n")
        assert detect(src / "a.psv", (src / "a.psv").read_text()) == "psv-test"
        out = tmp_path / "out"
        r = CliRunner().invoke(app, ["ingest", str(src), "--out", str(out), "--no-llm", "-q", "--set", "real.pii.ner=false"])
        assert r.exit_code == 0, r.output
        sessions = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
        assert sessions and sessions[0]["meta"]["format"] == "psv-test"
        assert "psv-test" in CliRunner().invoke(app, ["ingest", "--help"]).output
        with pytest.raises(ValueError, match="already registered"):
            type("AnotherCSV", (Reader,), {"name": "csv"})
        with pytest.raises(UserError, match="did you mean 'psv-test'"):
            READERS.get("psv-tes", key="--format")
    finally:
        READERS.remove("psv-test")
    assert "psv-test" not in READERS


# -- an LLM backend: one class with @register --------------------------------------------------
def test_new_backend_is_one_class(tmp_path):
    @register("shout-test")
    class ShoutBackend(Backend):
        async def complete(self, req: ChatRequest) -> Completion:
            self.calls += 1
            return Completion(text=req.messages[-1]["content"].upper(), prompt_tokens=3, completion_tokens=2,
                              model=req.model)

    try:
        r = CliRunner().invoke(app, ["ask", "hello there", "-c", "configs/demo.yaml", "--set", f"runs_dir={tmp_path}",
                                     "--set", "endpoints.local.backend=shout-test"])
        assert r.exit_code == 0, r.output
        assert "HELLO THERE" in r.output
        with pytest.raises(ValueError, match="already registered"):
            register("fake")(type("OtherFake", (ShoutBackend,), {}))
        with pytest.raises(UserError, match="unknown backend 'shout-tset'; did you mean 'shout-test'"):
            BACKENDS.get("shout-tset", key="endpoints.local.backend")
    finally:
        BACKENDS.remove("shout-test")


# -- a judge metric: one declaration plus its rubric prompt in the domain ----------------------
def simulate_score_report(ctx, n: int) -> tuple[list, Path]:
    """simulate, score and report over `n` evaluation scenarios with a fake model per variant:
    (the scores, the report folder)."""
    for v in ctx.cfg.variant_list():
        save_entry(ctx.store, ModelEntry(variant=v.name, backend="fake", model="fake"))
    ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", [
        Scenario(id=f"s{i}", summary=f"case {i}", scenario=f"I worry about exam number {i} every night.")
        for i in range(n)])
    ctx.run_stage("simulate", simulate.run)
    ctx.run_stage("score", score.run)
    scores = list(ctx.store.stage("score").read("scores.jsonl", score.Score))
    ctx.run_stage("report", report.run)
    return scores, ctx.store.stage("report").path


def test_new_judge_metric_reaches_scores_table_and_figures(fake_ctx, tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "hybridtune" / "domains" / "cbt", pack)
    rubric = (pack / "prompts" / "eval_judge_empathy.yaml").read_text().replace("empathy", "warmth").replace("1-10", "1-5")
    (pack / "prompts" / "eval_judge_warmth.yaml").write_text(rubric)
    METRICS.add("warmth", Metric("warmth", "Warmth", low=1, high=5))
    try:
        ctx_cm, fake = fake_ctx(f"domain={pack}", "evaluate.max_turns=1", "evaluate.metrics=[empathy, warmth]")
        with ctx_cm as ctx:
            scores, out = simulate_score_report(ctx, 3)
        warm = [s for s in scores if s.metric == "warmth"]
        assert len(warm) == 3 * len(ctx.cfg.variant_list()) and all(1 <= s.score <= 5 for s in warm)
        schemas = {r.schema_name: r.json_schema for r in fake.requests if r.json_schema}
        assert schemas["Rating"]  # the 1-10 metric keeps its schema name
        assert any(r.json_schema and r.json_schema["properties"]["score"].get("maximum") == 5 for r in fake.requests)
        md = (out / "report.md").read_text()
        assert "| Model | Empathy Avg | Median | Min | Max | Warmth Avg | Median | Min | Max | Total Conversations |" in md
        if len({s.score for s in warm}) > 1:  # drawn; scores that all tie are named in a note instead of flat plots
            assert (out / "bar_warmth.png").is_file() and (out / "scatter.png").is_file()
            assert "Mean warmth with bootstrap 95% CI" in md
        else:
            assert not (out / "bar_warmth.png").exists()
            assert re.search(r"Every (empathy and every )?warmth score is", md)
        with pytest.raises(ValueError, match="already registered"):
            METRICS.add("warmth", Metric("warmth", "Other warmth"))
    finally:
        METRICS.remove("warmth")
    with pytest.raises(UserError, match="evaluate.metrics: unknown judge metric 'warmth'"):
        METRICS.get("warmth", key="evaluate.metrics")


def test_a_pack_declares_its_own_judge_metric(fake_ctx, tmp_path):
    """A domain's metric is an entry of its domain.yaml `metrics:` plus a rubric; shared code names none."""
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "hybridtune" / "domains" / "cbt", pack)
    rubric = (pack / "prompts" / "eval_judge_empathy.yaml").read_text().replace("empathy", "clarity").replace("1-10", "1-4")
    (pack / "prompts" / "clarity_rubric.yaml").write_text(rubric)
    with (pack / "domain.yaml").open("a") as f:
        f.write("  - {name: clarity, label: Clarity, low: 1, high: 4, prompt: clarity_rubric}\n")
    try:
        ctx_cm, fake = fake_ctx(f"domain={pack}", "evaluate.max_turns=1", "evaluate.metrics=[clarity]")
        with ctx_cm as ctx:
            scores, out = simulate_score_report(ctx, 1)
            md = (out / "report.md").read_text()
        assert {s.metric for s in scores} == {"clarity"} and all(1 <= s.score <= 4 for s in scores)
        assert {s.prompt.split("@")[0] for s in scores} == {"clarity_rubric"}
        assert "| Model | Clarity Avg | Median | Min | Max |" in md
        (pack / "domain.yaml").write_text((pack / "domain.yaml").read_text().replace("label: Clarity", "label: Other"))
        with pytest.raises(UserError, match=r"domain\.yaml: metrics: .*'clarity' is already registered"):
            load_domain(str(pack))
    finally:
        METRICS.remove("clarity")
    shared = [p for p in (ROOT / "hybridtune").rglob("*.py") if "ctrs" in p.read_text().lower()]
    assert not shared, f"a domain's metric named in shared code: {shared}"
