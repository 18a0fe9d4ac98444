"""Shared helpers of the hardening suite: a tiny whole-pipeline config, a subprocess runner
for `python -m hybridtune.cli run`, and artifact/id/cache inspection.

The tiny pipeline runs every stage except `train` (covered by the training tests' own
resume test): models.json gets fake/endpoint entries instead, so the stages after train
run too. Sizes are the smallest that still exercise each stage's item loop.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# every stage but train, in run order
STAGES = ["real", "split", "personas", "scenarios", "synth", "curate", "eval_scenarios", "mix",
          "simulate", "score", "likelihood", "calibrate", "report"]
BEFORE_TRAIN = STAGES[:STAGES.index("mix") + 1]
AFTER_TRAIN = STAGES[STAGES.index("mix") + 1:]

# held-out scenarios from a file: the fake/mock backends write the same minimal text for
# every generated scenario, which the contamination check (rightly) rejects
EVAL_SCENARIOS = """\
- summary: Client worries about losing a new job after one critical email from a manager.
  scenario: I got one email from my boss saying my report needed work and now I cannot sleep, I keep thinking they will fire me.
  attitude: anxious but cooperative
- summary: Student avoids friends after failing a chemistry exam and believes everyone thinks less of them.
  scenario: Since the exam I skip lunch with my friends because I am sure they all see me as the stupid one now.
  attitude: withdrawn
"""

# two small transcripts (no PII): the `real` stage has something to read without shared data
TRANSCRIPT = """\
Counselor: Hi, thanks for coming in today. What would you like to talk about?
Client: I have been feeling really stressed about my exams, I cannot focus at all.
Counselor: That sounds hard. When you sit down to study, what goes through your mind?
Client: That I will fail no matter what I do, so why even try.
Counselor: So the thought is that failing is certain. How often has that prediction come true before?
Client: Honestly not often, I usually pass, just not with great marks.
Counselor: What might you say to a friend who had that same thought before an exam?
Client: I would tell them to take it one chapter at a time and see how it goes.
"""
TRANSCRIPT2 = """\
Counselor: Welcome back. How has the week been since we last met?
Client: Not great, I argued with my sister and now I keep replaying it all night.
Counselor: Replaying it sounds exhausting. What part of the argument comes back most?
Client: When she said I never listen. I felt like a terrible person after that.
Counselor: You heard one sentence and concluded you are a terrible person. Is there another way to see it?
Client: Maybe she was upset too, and I do listen sometimes, like when she moved house.
Counselor: That is an important piece of evidence. What would you like to try this week?
Client: I could call her and ask what she meant instead of guessing.
"""


def tiny_overrides(tmp: Path, runs_dir: Path) -> list[str]:
    """`--set` overrides for configs/demo.yaml that make every stage tiny and model-light."""
    data = tmp / "inputs"
    data.mkdir(parents=True, exist_ok=True)
    (data / "exams.txt").write_text(TRANSCRIPT)
    (data / "sister.txt").write_text(TRANSCRIPT2)
    scen = tmp / "eval_scenarios.yaml"
    scen.write_text(EVAL_SCENARIOS)
    return [
        f"runs_dir={runs_dir}", "quiet=true", f"real.inputs=[{data}]",
        "real.pii.ner=false",  # spaCy NER adds ~15 s a process; pattern recognizers still run
        "synth.personas=3", "synth.persona_checks=false", "synth.scenario_checks=false",
        "synth.scenarios_per_persona=1", "synth.sessions=3", "synth.min_exchanges=2", "synth.max_exchanges=3",
        "synth.concurrency=2",
        f"evaluate.scenarios_file={scen}", "evaluate.scenarios=2", "evaluate.max_turns=2",
        "evaluate.bootstrap_resamples=100",
        "mix.size=4", "mix.allow_smaller=true", "mix.contamination=shingles",
        "llm.max_failure_rate=1.0",
    ]


def hybridtune(args: list[str], env: dict | None = None, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridtune.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def start(args: list[str], env: dict | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hybridtune.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env={**os.environ, **(env or {})})


def run_args(sets: list[str], stages: list[str]) -> list[str]:
    args = ["run", "configs/demo.yaml"]
    for s in sets:
        args += ["--set", s]
    for s in stages:
        args += ["--stage", s]
    return args


def register_fake_models(run_dir: Path, backend: str = "fake") -> None:
    """models.json with the demo's declared variants, as the train stage would write it (train is skipped)."""
    from hybridtune.config import load_config
    from hybridtune.records import ModelEntry
    from hybridtune.registry import save_entry
    from hybridtune.store import RunStore

    store = RunStore(run_dir)
    for v in (x.name for x in load_config(ROOT / "configs" / "demo.yaml").variant_list()):
        save_entry(store, ModelEntry(variant=v, backend=backend, model="fake" if backend == "fake" else "mock",
                                     endpoint="local" if backend == "openai" else None))


def jsonl_ids(path: Path) -> list[str]:
    """Every id in a JSONL file, duplicates included (a torn last line is ignored, as the store does)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "id" in obj:
            out.append(str(obj["id"]))
    return out


def artifact_ids(run_dir: Path) -> dict[str, list[str]]:
    """{relative jsonl path: sorted unique ids} for every record file of a run."""
    res = {}
    for p in sorted(run_dir.rglob("*.jsonl")):
        rel = str(p.relative_to(run_dir))
        res[rel] = sorted(set(jsonl_ids(p)))
    return res


def cache_keys(run_dir: Path) -> set[str]:
    db = run_dir / "cache.sqlite"
    if not db.exists():
        return set()
    con = sqlite3.connect(str(db))
    try:
        return {k for (k,) in con.execute("SELECT key FROM replies")}
    finally:
        con.close()


def text_files(root: Path):
    for p in root.rglob("*"):
        if p.is_file():
            yield p
