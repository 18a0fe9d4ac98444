"""A stage killed with SIGKILL mid-way resumes without losing or duplicating records, and
an API key in the environment appears in no file under the run directory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = r'''
import asyncio, sys
from hybridtune.config import load_config
from hybridtune.context import open_run, map_items
from hybridtune.records import Record

class Out(Record):
    text: str

cfg = load_config(None, [f"runs_dir={sys.argv[1]}", "quiet=true", "endpoints.local.backend=fake"])

async def stage(ctx, st):
    llm = ctx.llm("generator")
    async def one(_key, i):
        r = await llm.chat([{"role": "user", "content": f"item {i}"}], sample=i)
        await asyncio.sleep(0.05)
        return Out(id=f"k{i}", text=r.text)
    res = await map_items(ctx, st, [(f"k{i}", i) for i in range(60)], one, "out.jsonl", concurrency=2)
    return res.as_dict()

with open_run(cfg) as ctx:
    print(ctx.run_stage("gen", stage), flush=True)
    print("CALLS", ctx.llms.model_calls, flush=True)
'''


def _run(tmp_path: Path, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "runs")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_sigkill_midway_then_resume(tmp_path):
    p = _run(tmp_path)
    out = tmp_path / "runs" / "demo" / "gen" / "out.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 10):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    partial = out.read_text().count("\n")
    assert 10 <= partial < 60, "kill should land mid-stage"
    assert not (out.parent / "_done.json").exists()
    p2 = _run(tmp_path)
    stdout, stderr = p2.communicate(timeout=120)
    assert p2.returncode == 0, stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()]
    assert sorted(set(ids)) == sorted(f"k{i}" for i in range(60))
    assert len(ids) == len(set(ids)), "no duplicates"
    calls = int(stdout.split("CALLS")[1])
    assert calls <= 60 - partial + 2, f"cache: completed calls must not be repeated ({calls} calls after {partial} done)"
    # rerunning a completed stage does nothing
    p3 = _run(tmp_path)
    stdout3, _ = p3.communicate(timeout=60)
    assert "CALLS 0" in stdout3


def test_api_key_never_written(tmp_path):
    env = dict(os.environ, OPENAI_API_KEY="sk-live-DO-NOT-LEAK-4242")
    p = _run(tmp_path, env=env)
    p.communicate(timeout=120)
    assert p.returncode == 0
    for f in (tmp_path / "runs").rglob("*"):
        if f.is_file():
            assert b"DO-NOT-LEAK" not in f.read_bytes(), f
