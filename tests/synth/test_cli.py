"""The `personas`, `scenarios`, `synthesize` verbs as a user runs them (fake backend via config)."""
from __future__ import annotations

import subprocess
import sys

from hybridtune.records import Session


def hybridtune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridtune.cli", *args], capture_output=True, text=True, timeout=300)


def test_verbs_run_the_stages_and_errors_are_one_line(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: clitest\nruns_dir: {tmp_path / 'runs'}\nendpoints: {{local: {{backend: fake}}}}\n"
                   "synth: {personas: 3, scenarios_per_persona: 1, sessions: 2, persona_checks: false,\n"
                   "        near_duplicate_threshold: 1, min_exchanges: 1, max_exchanges: 2}\n")
    # scenarios before personas: one clear error naming the file and the fix, no traceback
    r = hybridtune("scenarios", "-c", str(cfg), "-q")
    assert r.returncode == 2 and "run `hybridtune personas` first" in r.stderr and "Traceback" not in r.stderr
    for verb in ("personas", "scenarios", "synthesize"):
        r = hybridtune(verb, "-c", str(cfg), "-q")
        assert r.returncode == 0, r.stderr
    assert "synth/sessions.jsonl" in r.stdout
    run = tmp_path / "runs" / "clitest"
    from hybridtune.store import StageDir

    ss = list(StageDir(run / "synth", "synth").read("sessions.jsonl", Session))
    assert len(ss) == 2 and (run / "synth" / "synth_report.md").is_file()
    r = hybridtune("personas", "-c", str(cfg), "--set", "synth.min_exchanges=5", "-q")
    assert r.returncode == 2 and "synth.min_exchanges" in r.stderr and "Traceback" not in r.stderr
