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
    from hybridtune.devtools.mock_openai import MockServer

    with (srv := MockServer(openai=True)) as url:  # the provider: the dry run reads its model list, nothing else
        out = ht("run", "configs/openai.yaml", "--dry-run", "--set", f"runs_dir={tmp_path}",
                 "--set", f"endpoints.openai.base_url={url}", "--set", "real.inputs=[data/demo]",
                 "--set", "train.backend=openai", env={"OPENAI_API_KEY": "sk-test-xyz"})
        stats = srv.stats()
    assert out.returncode == 0, out.stderr
    assert "no model was called" in out.stdout and "sk-test-xyz" not in out.stdout + out.stderr
    assert stats["requests"] == 0 and stats["files"] == 0 and stats["jobs_created"] == 0
    assert "provider: WARNING" in out.stdout or "provider: gpt-4o" in out.stdout
