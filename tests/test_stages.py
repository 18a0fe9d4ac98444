"""The stage declaration (hybridtune/stages.py) drives the pipeline, the CLI verbs and the docs:
adding a stage is one `Stage(...)`, and it is then run by `run`, has its verb, and its roles are checked."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hybridtune import cli_stages, stages
from hybridtune.errors import UserError
from hybridtune.pipeline import run_pipeline, select
from hybridtune.stages import Stage

ROOT = Path(__file__).resolve().parents[1]


def test_docs_stage_table_is_the_declaration():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert stages.stage_table() in doc, "regenerate the table in docs/architecture.md from stages.stage_table()"


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
