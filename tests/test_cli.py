"""The console command: user errors are one `error:` line (no traceback); help lists verbs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ht(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridtune.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_help_lists_verbs():
    out = ht("--help")
    assert out.returncode == 0
    for verb in ("run", "config", "ask"):
        assert verb in out.stdout


def test_config_check_ok():
    out = ht("config", "check", "configs/demo.yaml")
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stderr


def test_bad_config_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsynth:\n  sesions: 3\nroles:\n  judge: {endpoint: nowhere}\n")
    out = ht("config", "check", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and "synth.sesions" in out.stderr


def test_missing_key_env_named(tmp_path):
    out = ht("config", "check", "configs/openai.yaml", env={"OPENAI_API_KEY": ""})
    assert out.returncode == 2 and "OPENAI_API_KEY is not set" in out.stderr and "Traceback" not in out.stderr


def test_dry_run_spends_nothing(tmp_path):
    from hybridtune.devtools.mock_openai import MockConfig, MockServer

    with (srv := MockServer(MockConfig(mode="openai"))) as url:  # the provider: the dry run reads its model list, nothing else
        out = ht("run", "configs/openai.yaml", "--dry-run", "--set", f"runs_dir={tmp_path}",
                 "--set", f"endpoints.openai.base_url={url}", "--set", "real.inputs=[data/demo]",
                 "--set", "train.backend=openai", env={"OPENAI_API_KEY": "sk-test-xyz"})
        stats = srv.stats()
    assert out.returncode == 0, out.stderr
    assert "no model was called" in out.stdout and "sk-test-xyz" not in out.stdout + out.stderr
    assert stats["requests"] == 0 and stats["files"] == 0 and stats["jobs_created"] == 0
    assert "provider: WARNING" in out.stdout or "provider: gpt-4o" in out.stdout


def test_version_matches_the_package():
    import tomllib

    out = ht("--version")
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert out.returncode == 0 and out.stdout.strip() == f"hybridtune {want}", out.stdout + out.stderr


def test_run_consuming_verbs_refuse_a_missing_run_and_create_nothing(tmp_path):
    """`report` on a missing run used to create the run folder; so did `chat --variant nonexistent`."""
    runs = tmp_path / "runs"
    for args in (["report"], ["score"], ["chat", "--variant", "nonexistent"], ["serve", "--variant", "x"],
                 ["report", str(tmp_path / "nowhere")]):
        out = ht(*args, "--set", f"runs_dir={runs}", "--set", "endpoints.local.backend=fake")
        assert out.returncode == 2 and "Traceback" not in out.stderr, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, (args, out.stderr)
        assert "no such run" in out.stderr or "config file not found" in out.stderr, (args, out.stderr)
        assert not runs.exists() and not (tmp_path / "nowhere").exists(), args


def test_a_folder_without_config_is_not_a_run(tmp_path):
    out = ht("report", str(tmp_path))
    assert out.returncode == 2 and "not a run folder (no config.yaml in it)" in out.stderr


def test_outside_the_checkout_the_missing_default_is_not_circular(tmp_path):
    """Without configs/demo.yaml in reach the verbs use the built-in defaults; a named config
    that is missing says where it looked and what to give instead of 'such as configs/demo.yaml'."""
    out = ht("report", cwd=tmp_path)
    assert out.returncode == 2 and "runs/demo: no such run" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists()
    out = ht("config", "check", "configs/demo.yaml", cwd=tmp_path)
    assert out.returncode == 2 and f"looked from {tmp_path}" in out.stderr
    assert "such as configs/demo.yaml" not in out.stderr


def test_config_check_runs_the_dry_runs_domain_and_input_checks():
    """All at once, one line each, blamed on --set where --set gave the key; no model is called
    (the demo's endpoint is the in-process model, which `config check` never loads)."""
    out = ht("config", "check", "configs/demo.yaml", "--set", "domain=cbtt", "--set", "real.inputs=[data/nope]",
             "--set", "evaluate.scenarios_file=nope.yaml")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "error: config check found 3 problem(s):", out.stderr
    assert any(x.strip().startswith("--set domain: 'cbtt' is not a domain folder") and "did you mean 'cbt'?" in x
               for x in lines), out.stderr
    assert any(x.strip().startswith("--set real.inputs: data/nope not found") for x in lines), out.stderr
    assert any(x.strip().startswith("--set evaluate.scenarios_file:") for x in lines), out.stderr


def test_config_check_blames_a_missing_input_in_the_file_on_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"runs_dir: {tmp_path}\nreal:\n  inputs: [{tmp_path / 'gone'}]\n")
    out = ht("config", "check", str(cfg))
    assert out.returncode == 2 and f"real.inputs: {tmp_path / 'gone'} not found" in out.stderr, out.stderr
    assert "--set" not in out.stderr


def test_bad_set_values_are_blamed_on_set_not_on_the_file():
    out = ht("config", "check", "configs/demo.yaml", "--set", "synth.sessions=many", "--set", "synth.sesions=3")
    assert out.returncode == 2, out.stderr
    assert "--set synth.sessions: " in out.stderr
    assert "--set synth.sesions: unknown key; did you mean 'sessions'?" in out.stderr
    assert "configs/demo.yaml" not in out.stderr, out.stderr


def test_every_stage_has_a_row_in_the_final_table():
    """The train stage's summary is lists and dicts only, so its row in `run`'s table was empty."""
    from hybridtune.cli_stages import stage_row

    train = {"stage": "train", "seconds": 310.2, "variants": ["base", "real"], "trained": ["real"], "skipped": [],
             "train_loss": ["real 2.314"], "metrics": {"real": {"train_loss": 2.314}}}
    assert stage_row(train) == "variants=base,real, trained=real, skipped=, train_loss=real 2.314"


def test_library_noise_is_off_unless_verbose():
    """FutureWarnings and Hugging Face log lines reached the demo's terminal; `-v` brings them back."""
    code = ("import sys, warnings; from hybridtune import noise; noise.configure(sys.argv[1] == 'v'); "
            "from transformers.utils import logging as hf; hf.get_logger('transformers.demo').warning('hf says'); "
            "warnings.warn('old api', FutureWarning)")
    env = {**os.environ, "PYTHONWARNINGS": "", "TRANSFORMERS_VERBOSITY": ""}
    env = {k: v for k, v in env.items() if v}
    quiet = subprocess.run([sys.executable, "-c", code, "q"], capture_output=True, text=True, env=env, timeout=120)
    loud = subprocess.run([sys.executable, "-c", code, "v"], capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "hf says" not in quiet.stderr and "old api" not in quiet.stderr, quiet.stderr
    assert "hf says" in loud.stderr and "FutureWarning: old api" in loud.stderr, loud.stderr


def test_verbose_is_a_global_and_a_run_option():
    out = ht("--help")
    assert "--verbose" in out.stdout and "-v" in out.stdout
    assert "--verbose" in ht("run", "--help").stdout
