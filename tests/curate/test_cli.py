"""The verbs end to end on the fake backend: judge -> review-export/import -> mix -> export,
and the one-line errors (mix before judge, review beyond loopback without a token)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from hybridtune.cli import app
from hybridtune.store import RunStore

from .helpers import session


def test_verbs_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    sets = ["--set", f"runs_dir={runs}", "--set", "endpoints.local.backend=fake", "--set", "mix.size=6",
            "--set", "mix.allow_smaller=true", "--set", "mix.min_test=1", "--set", "curate.threshold=1", "-q"]
    store = RunStore(runs / "demo")
    store.stage("synth").write_records("sessions.jsonl", [session(i, techniques=("validation",)) for i in range(8)])
    store.stage("real").write_records("sessions.jsonl", [session(i, "real") for i in range(4)])
    r = CliRunner()
    out = r.invoke(app, ["mix", "-c", "configs/demo.yaml", *sets])
    assert out.exit_code != 0 and "hybridtune judge" in str(out.exception)
    out = r.invoke(app, ["split", "-c", "configs/demo.yaml", *sets])  # the held-out split, after the real stage
    assert out.exit_code == 0 and "split/split.json" in out.output, out.output
    out = r.invoke(app, ["judge", "-c", "configs/demo.yaml", *sets])
    assert out.exit_code == 0, out.output
    assert "selected=12" in out.output  # the fake judge's stand-in scores pass threshold 1
    queue = tmp_path / "all.csv"
    out = r.invoke(app, ["review-export", str(runs / "demo"), str(queue), "--which", "all"])
    assert out.exit_code == 0 and "12 sessions" in out.output
    rows = queue.read_text().splitlines()
    sid = rows[1].split(",")[0]
    dec = tmp_path / "dec.jsonl"
    dec.write_text(json.dumps({"session_id": sid, "decision": "reject", "reviewer": "ana"}) + "\n")
    out = r.invoke(app, ["review-import", str(runs / "demo"), str(dec)])
    assert out.exit_code == 0 and "1 decisions imported" in out.output
    out = r.invoke(app, ["mix", "-c", "configs/demo.yaml", *sets])
    assert out.exit_code == 0, out.output
    mixed = (runs / "demo" / "mix" / "hybrid" / "train.jsonl").read_text() + (runs / "demo" / "mix" / "hybrid" / "valid.jsonl").read_text()
    assert sid not in mixed and mixed.count('"source":"real"') == 3
    out = r.invoke(app, ["export", "-c", "configs/demo.yaml", *sets])
    assert out.exit_code == 0 and "hybrid:" in out.output
    assert (runs / "demo" / "mix" / "hybrid" / "README.md").exists()


def test_review_refuses_open_bind_without_token(tmp_path, monkeypatch):
    monkeypatch.delenv("HYBRIDTUNE_REVIEW_TOKEN", raising=False)
    out = CliRunner().invoke(app, ["review", str(tmp_path), "--host", "0.0.0.0"])
    assert out.exit_code != 0 and "needs --token" in str(out.exception)
