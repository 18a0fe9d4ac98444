"""CLI verbs: eval-scenarios from a file (seeded spread), a user error as one line, report rerun."""
from __future__ import annotations

import subprocess
import sys

from hybridtune.records import Scenario


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridtune.cli", *args], capture_output=True, text=True, timeout=120)


def test_eval_scenarios_verb_spreads_and_errors(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text("".join(f'{{"summary": "case {i}", "scenario": "client story number {i} about worry"}}\n' for i in range(6)))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"name: demo\nruns_dir: {tmp_path / 'runs'}\nendpoints: {{local: {{backend: fake}}}}\n")
    common = ["-c", str(cfg), "-q"]
    ok = run_cli("eval-scenarios", *common, "--set", f"evaluate.scenarios_file={f}", "--set", "evaluate.scenarios=3")
    assert ok.returncode == 0, ok.stderr
    st = tmp_path / "runs" / "demo" / "eval_scenarios" / "scenarios.jsonl"
    kept = [Scenario.model_validate_json(x) for x in st.read_text().splitlines()]
    assert len(kept) == 3 and len({s.summary for s in kept}) == 3
    again = run_cli("eval-scenarios", *common, "--set", f"evaluate.scenarios_file={f}", "--set", "evaluate.scenarios=3",
                    "--force")
    assert again.returncode == 0 and st.read_text().splitlines() == [s.model_dump_json() for s in kept]  # same seed, same pick
    bad = run_cli("eval-scenarios", *common, "--set", f"evaluate.scenarios_file={tmp_path / 'nope.yaml'}", "--force")
    assert bad.returncode == 2 and bad.stderr.startswith("error: evaluate.scenarios_file:") and "Traceback" not in bad.stderr
