"""The stage declaration (hybridtune/stages.py) drives the pipeline, the CLI verbs and the docs:
adding a stage is one `Stage(...)`, and it is then run by `run`, has its verb, and its roles are checked."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hybridtune import cli_stages, stages
from hybridtune.config import ExperimentConfig
from hybridtune.errors import UserError
from hybridtune.estimate import estimate
from hybridtune.pipeline import run_pipeline, select
from hybridtune.preflight import preflight
from hybridtune.stages import Stage
from hybridtune.store import StageDir

ROOT = Path(__file__).resolve().parents[1]


def test_docs_stage_table_is_the_declaration():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert stages.stage_table() in doc, "regenerate the table in docs/architecture.md from stages.stage_table()"
    assert stages.facts_table() in doc, "regenerate the table in docs/architecture.md from stages.facts_table()"


def test_declared_sections_estimates_and_published_files_exist():
    for s in stages.STAGES:
        assert s.section is None or s.section in ExperimentConfig.model_fields, s.name
        assert s.estimate is None or callable(s.estimate_fn), s.name
        assert [f for f in s.publishes if f"`{f}`" not in s.writes] == [], s.name


READ = re.compile(r'stage\("(\w+)"\)\.(?:read|read_json|read_dicts|file)\("([^"]+)"')


def published_reads(pkg: Path) -> list[str]:
    """`file: stage/name` for each `stage("X").read*("Y")` in the code where X does not publish Y."""
    found = []
    for f in sorted(pkg.rglob("*.py")):
        for stage, name in READ.findall(f.read_text(encoding="utf-8")):
            if name != StageDir.SUMMARY and name not in stages.get(stage).publishes:
                found.append(f"{f.name}: {stage}/{name}")
    return found


def test_a_stage_reads_only_what_an_earlier_stage_publishes(tmp_path):
    assert published_reads(ROOT / "hybridtune") == []
    (tmp_path / "late.py").write_text('ctx.store.stage("curate").read("judged.jsonl", Session)\n')
    assert published_reads(tmp_path) == ["late.py: curate/judged.jsonl"]


def test_every_declared_verb_has_the_shared_options():
    app = typer.Typer()
    cli_stages.register(app)
    cmds = {c.name: c for c in typer.main.get_command(app).commands.values()}
    for s in stages.STAGES:
        if not s.verb:
            continue
        opts = {o for p in cmds[s.verb].params for o in p.opts}
        assert {"--config", "--set", "--quiet"} <= opts, s.verb
        assert ("--force" in opts) != s.rerun, s.verb  # a stage that always reruns has no --force
    assert {"--variant", "--resume"} <= {o for p in cmds["train"].params for o in p.opts}
    assert select(start="score") == ["score", "likelihood", "calibrate", "report"]
    with pytest.raises(UserError, match="unknown stage; stages are real, split, personas"):
        select(["nope"])


async def _echo(ctx, st, *, word: str = "hi"):
    """A throwaway stage: one call to the judge role, one file."""
    reply = await ctx.llm("judge").chat([{"role": "user", "content": word}])
    st.write_json("echo.json", {"word": word, "reply": reply.text})
    return {"word": word}


ECHO = Stage("echo", _echo, "echo", "Echo one word through the judge.", "nothing", "`echo.json`",
             roles=("judge",), output="echo.json", starts_run=True,  # reads no earlier stage
             options=(stages.Option("word", str, "hi", ("--word",), "the word to send"),))


def test_a_new_stage_is_one_declaration(tmp_path, monkeypatch, make_cfg):
    monkeypatch.setattr(stages, "STAGES", [*stages.STAGES, ECHO])
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"name: t\nruns_dir: {tmp_path / 'runs'}\nendpoints: {{local: {{backend: fake}}}}\n")
    app = typer.Typer()
    cli_stages.register(app)
    r = CliRunner().invoke(app, ["echo", "-c", str(cfg_file), "--word", "hello", "-q"])
    assert r.exit_code == 0, r.output
    assert "echo: stage=echo" in r.output and "word=hello" in r.output and "echo/echo.json" in r.output
    # done: a second call skips it, --force reruns it
    r = CliRunner().invoke(app, ["echo", "-c", str(cfg_file), "--word", "again", "-q"])
    assert "word=hello" in r.output
    r = CliRunner().invoke(app, ["echo", "-c", str(cfg_file), "--word", "again", "--force", "-q"])
    assert "word=again" in r.output
    # the pipeline runs it in order, after report, and checks its role first
    assert select()[-1] == "echo"
    bad = make_cfg("roles.judge.endpoint=remote", "endpoints.remote.backend=openai",
                   "endpoints.remote.model=gpt-4o-mini", "endpoints.remote.base_url=http://127.0.0.1:9/v1",
                   "endpoints.remote.api_key_env=NO_SUCH_KEY_XYZ")
    with pytest.raises(UserError, match="NO_SUCH_KEY_XYZ"):
        run_pipeline(bad, only=["echo"])
    ok = make_cfg()
    assert run_pipeline(ok, only=["echo"])["echo"]["word"] == "hi"
    assert "| echo | `echo` |" in stages.stage_table()


def test_roles_needed_follow_the_config(make_cfg):
    assert stages.roles_needed(["real"], make_cfg("real.llm=false")) == []
    assert stages.roles_needed(["real", "personas", "mix"], make_cfg()) == ["annotator", "generator", "judge"]
    assert stages.roles_needed(["train", "report"], make_cfg()) == []


TALLY = '''"""A throwaway stage in a module of its own: it batches, and declares how it is estimated."""


async def run(ctx, st):
    reply = await ctx.llm("judge").chat([{"role": "user", "content": f"tally for {st.name}"}])
    return {"reply": reply.text}


def estimate(e):
    e.add("tally", "judge", 3, 300)
'''


def _tally(tmp_path, monkeypatch, **kw) -> Stage:
    """Declare the throwaway stage `tally` before calibrate (its module written to tmp_path)."""
    (tmp_path / "tally_stage.py").write_text(TALLY)
    monkeypatch.syspath_prepend(str(tmp_path))
    tally = Stage("tally", "tally_stage:run", "tally", "Tally once.", "nothing", "nothing", roles=("judge",), **kw)
    at = stages.names().index("calibrate")
    monkeypatch.setattr(stages, "STAGES", [*stages.STAGES[:at], tally, *stages.STAGES[at:]])
    return tally


def test_a_declared_estimate_is_in_the_estimate_in_run_order(tmp_path, monkeypatch, make_cfg):
    _tally(tmp_path, monkeypatch, batches=True, estimate="tally_stage:estimate")
    sets = ["llm.prices.fake={input: 1.0, output: 2.0}", "endpoints.local.model=fake"]
    for batch in (False, True):
        est = estimate(make_cfg(*sets, f"llm.batch={str(batch).lower()}", path="configs/demo.yaml"))
        order = list(dict.fromkeys(r.stage for r in est.rows))
        assert order.index("score") < order.index("tally") < order.index("calibrate")
        row = next(r for r in est.rows if r.stage == "tally")
        assert (row.calls, row.input_tokens, row.batch) == (3, 300, batch) and row.output_tokens > 0
        full = (row.input_tokens * 1.0 + row.output_tokens * 2.0) / 1e6
        assert row.usd == pytest.approx(full * (0.5 if batch else 1.0))  # llm.batch_discount
    assert "tally" in "\n".join(preflight(make_cfg(*sets, path="configs/demo.yaml")))


def test_the_declaration_decides_whether_a_stage_batches(tmp_path, monkeypatch, make_cfg):
    from hybridtune.context import open_run
    from hybridtune.devtools.mock_openai import MockConfig, MockServer

    _tally(tmp_path, monkeypatch, batches=True)
    plain = Stage("plain", "tally_stage:run", "plain", "Tally once, unbatched.", "nothing", "nothing",
                  roles=("judge",))
    monkeypatch.setattr(stages, "STAGES", [*stages.STAGES, plain])
    srv = MockServer(MockConfig(batch_seconds=0.2))
    with srv as url:
        cfg = make_cfg(f"endpoints.local.base_url={url}", "endpoints.local.model=mock", "llm.batch=true",
                       "llm.batch_poll_s=0.1", f"runs_dir={tmp_path / 'runs'}", backend="openai")
        with open_run(cfg) as ctx:
            ctx.run_stage("tally", stages.get("tally").fn)
            assert srv.stats()["batches_created"] == 1 and srv.stats()["requests"] == 0
            ctx.run_stage("plain", stages.get("plain").fn)
            assert srv.stats()["batches_created"] == 1 and srv.stats()["requests"] == 1
