"""`run --dry-run`: blocking problems one line each, and the cost estimate per stage and role."""
from __future__ import annotations

import pytest
from test_cli import ht

from hybridtune.config import load_config
from hybridtune.errors import UserError
from hybridtune.estimate import estimate
from hybridtune.preflight import preflight


def test_openai_config_without_data_key_or_matching_trainer_fails_with_one_line_each(tmp_path):
    out = ht("run", "configs/openai.yaml", "--dry-run", "--set", f"runs_dir={tmp_path}", "--set", "real.inputs=[]",
             "--set", "train.backend=local", env={"OPENAI_API_KEY": ""})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    err = out.stderr.splitlines()
    assert err[0] == "error: dry run found problems:"
    problems = err[:next(i for i, x in enumerate(err) if x.startswith("cost estimate from the config alone"))]
    # both keys came from --set, so the lines blame --set
    assert any(x.strip().startswith("--set real.inputs: no real data configured") for x in problems)
    assert any(x.strip().startswith("--set train.backend: local trains LoRA adapters") for x in problems)
    assert any("OPENAI_API_KEY is not set" in x for x in problems)
    assert len(problems) == 4
    assert any(x.strip().startswith("estimated total: $") for x in err)  # the cost, without a key


def test_names_not_downloaded_say_which_command_fetches_them(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDTUNE_DATA_DIR", str(tmp_path / "nothing"))
    cfg = make_cfg("real.inputs=[esconv]", "evaluate.scenarios_file=cactus", path="configs/demo.yaml")
    with pytest.raises(UserError) as e:
        preflight(cfg)
    msg = str(e.value)
    assert "run `hybridtune data get esconv --accept-license esconv` first" in msg
    assert "run `hybridtune data get cactus` first" in msg


def test_training_backend_must_fit_the_endpoints(make_cfg):
    cfg = make_cfg("train.backend=openai", "train.openai.endpoint=nowhere", path="configs/demo.yaml")
    with pytest.raises(UserError, match="train.openai.endpoint: 'nowhere' is not defined"):
        preflight(cfg)
    cfg = make_cfg("train.backend=openai", "train.openai.endpoint=local", path="configs/demo.yaml")
    with pytest.raises(UserError, match="whose backend is fake"):
        preflight(cfg)


def test_demo_dry_run_prints_the_estimate_per_stage_and_role(make_cfg):
    cfg = make_cfg("llm.budget_usd=1", path="configs/demo.yaml")
    lines = preflight(cfg)
    text = "\n".join(lines)
    for stage in ("real", "personas", "synth", "curate", "simulate", "score", "calibrate"):
        assert any(x.strip().startswith(stage) for x in lines), stage
    assert "local LoRA: 3 variant(s) of smollm2" in text  # real, synthetic, hybrid
    assert "budget: estimated $0.00 is within llm.budget_usd $1.00" in text
    assert lines[-1] == "dry run: no model was called, nothing was spent"


def test_prices_batch_discount_and_fine_tuning_cost(make_cfg):
    sets = ["llm.prices.fake={input: 1.0, output: 2.0, training: 3.0}", "train.backend=openai",
            "train.openai.model=fake", "train.openai.n_epochs=2", "endpoints.local.model=fake"]
    est = estimate(make_cfg(*sets, path="configs/demo.yaml"))
    judge = [r for r in est.rows if r.stage == "curate"][0]
    assert judge.usd == pytest.approx((judge.input_tokens * 1.0 + judge.output_tokens * 2.0) / 1e6)
    assert est.training_usd > 0 and "x 2 epochs" in est.training[0]
    batched = estimate(make_cfg(*sets, "llm.batch=true", path="configs/demo.yaml"))
    bj = [r for r in batched.rows if r.stage == "curate"][0]
    sim = [r for r in batched.rows if r.stage == "simulate"][0]
    assert bj.batch and bj.usd == pytest.approx(judge.usd / 2)
    assert not sim.batch  # a conversation waits on each reply: no batch


def test_sizes_drive_the_estimate(make_cfg):
    small = estimate(make_cfg(path="configs/demo.yaml")).by_stage()
    big = estimate(make_cfg("synth.sessions=16", "evaluate.max_turns=6", path="configs/demo.yaml")).by_stage()
    assert big["synth"]["calls"] == 2 * small["synth"]["calls"]
    # twice the turns cost more than twice the input: each turn re-sends the dialogue so far
    assert big["simulate"]["input_tokens"] > 2.2 * small["simulate"]["input_tokens"]


def test_a_model_past_its_shutdown_date_fails_the_dry_run(make_cfg):
    from hybridtune.devtools.mock_openai import MockConfig, MockServer

    with MockServer(MockConfig(mode="openai", models="gpt-4o-mini=2020-01-01,gpt-4o")) as url:  # the provider's model list
        cfg = make_cfg(f"endpoints.local.base_url={url}", "endpoints.local.model=gpt-4o-mini", "train.backend=openai",
                       "train.openai.endpoint=local", "train.openai.model=gpt-4o", path="configs/demo.yaml",
                       backend="openai")
        with pytest.raises(UserError, match=r"gpt-4o-mini @ local .*shut down on 2020-01-01"):
            preflight(cfg)
