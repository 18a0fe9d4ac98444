"""Real runs with one command, against mocks of the remote services (issue 13, part B).

- `hybridtune run configs/openai.yaml` with the endpoint pointed at the mock OpenAI server
  (files, fine-tuning jobs, model list): real AnnoMI transcripts by name (`data get annomi`
  from a local mirror of ../shared/data, `real.inputs: [annomi]`), tiny sizes; killed with SIGKILL while a fine-tuning job runs, then rerun: no second job, the
  uploaded bytes equal the validated export, base / real / hybrid registered as gpt-4o-mini
  and the returned `ft:` names, and the evaluation's requests carry those names.
- `hybridtune run configs/gpu.yaml` against a mock vLLM (`--enable-lora`, runtime LoRA
  loading) with a CPU training run of the packaged SmolLM2 through the `accelerate launch`
  line the tool builds (one CPU process): each variant is served under its adapter's name.

Both are slow (minutes on 2 cores) and marked so.

    .venv/bin/python -m pytest -q tests/test_real_runs.py -m slow
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hybridtune.devtools.mock_openai import MockConfig, MockServer
from tests.hardening.common import EVAL_SCENARIOS, hybridtune, start
from tests.train.conftest import TINY

pytestmark = pytest.mark.slow
ENV = {"OPENAI_API_KEY": "sk-test-not-a-real-key", "HF_HUB_OFFLINE": "1"}


def annomi_by_name(tmp: Path) -> dict:
    """`hybridtune data get annomi` from a 127.0.0.1 mirror of ../shared/data (checksums verified)
    into a data folder of this test; the env that makes `real.inputs: [annomi]` resolve to it."""
    from hybridtune.catalogue.download import fetch
    from tests.test_catalogue import Mirror

    mirror = Mirror()
    try:
        mirror.serve("annomi")
        fetch("annomi", root=tmp / "data", base=mirror.url, log=lambda *_: None)
    finally:
        mirror.close()
    return {**ENV, "HYBRIDTUNE_DATA_DIR": str(tmp / "data")}


def tiny(tmp: Path) -> list[str]:
    """Overrides that keep every stage to a handful of items (and ≥ 10 examples per fine-tuning file):
    the first 16 AnnoMI transcripts, by name."""
    scen = tmp / "eval_scenarios.yaml"
    scen.write_text(EVAL_SCENARIOS)
    return [f"runs_dir={tmp / 'runs'}", "quiet=true", "real.inputs=[annomi]", "real.max_sessions=16",
            "real.pii.ner=false",
            "real.annotate.max_sessions=1", "real.annotate.max_turns_per_session=1",
            "synth.personas=3", "synth.persona_checks=false", "synth.scenario_checks=false",
            "synth.scenarios_per_persona=2", "synth.sessions=6", "synth.min_exchanges=2", "synth.max_exchanges=2",
            f"evaluate.scenarios_file={scen}", "evaluate.scenarios=2", "evaluate.max_turns=2",
            "evaluate.bootstrap_resamples=100", "evaluate.trust.likelihood_sessions=2",
            "evaluate.trust.likelihood_turns=2", "evaluate.trust.calib_items=3", "evaluate.trust.calib_samples=1",
            "evaluate.trust.calib_context=2", "evaluate.trust.simcheck_sessions=2", "evaluate.trust.simcheck_turns=2",
            "mix.size=30", "mix.allow_smaller=true", "mix.include_pending=true", "mix.contamination=shingles",
            "curate.threshold=1", "llm.max_failure_rate=1.0"]


def args(config: str, sets: list[str], *extra: str) -> list[str]:
    return ["run", config, *[x for s in sets for x in ("--set", s)], *extra]


def ok(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0, out.stderr[-4000:]


@pytest.mark.timeout(900)
def test_openai_config_end_to_end_resumes_the_same_fine_tuning_job(tmp_path):
    env = annomi_by_name(tmp_path)
    srv = MockServer(MockConfig(mode="openai", ft_seconds=6))
    with srv as url:
        sets = [*tiny(tmp_path), f"endpoints.openai.base_url={url}", "endpoints.openai.rpm=100000",
                "train.openai.poll_s=0.2"]
        run_dir = tmp_path / "runs" / "openai"
        ok(hybridtune(args("configs/openai.yaml", sets, "--start", "real", "--stage", "real", "--stage", "split", "--stage", "personas",
                           "--stage", "scenarios", "--stage", "synth", "--stage", "curate", "--stage",
                           "eval_scenarios", "--stage", "mix"), env=env, timeout=400))
        # the whole run; SIGKILL the moment the first fine-tuning job exists, then run again
        p = start(args("configs/openai.yaml", sets), env=env)
        job_file = run_dir / "train" / "real" / "openai_job.json"
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None:
            if job_file.exists() and "job_id" in json.loads(job_file.read_text() or "{}"):
                break
            time.sleep(0.05)
        assert p.poll() is None, f"run ended before a job was created: {p.communicate()[1][-3000:]}"
        os.kill(p.pid, signal.SIGKILL)
        p.communicate()
        assert srv.stats()["jobs_created"] == 1
        ok(hybridtune(args("configs/openai.yaml", sets), env=env, timeout=400))
        stats = srv.stats()
        reg = json.loads((run_dir / "models.json").read_text())
        jobs = {v: json.loads((run_dir / "train" / v / "openai_job.json").read_text()) for v in ("real", "hybrid")}
        api = httpx.Client(base_url=url, headers={"Authorization": "Bearer sk-test"})
        # one paid job per trained variant, the killed one followed, not repeated
        assert stats["jobs_created"] == 2 and stats["files"] == 4, stats
        for v, state in jobs.items():
            job = api.get(f"/fine_tuning/jobs/{state['job_id']}").json()
            assert job["status"] == "succeeded" and reg[v]["model"] == job["fine_tuned_model"]
            assert reg[v]["backend"] == "openai" and reg[v]["endpoint"] == "openai" and reg[v]["model"].startswith(
                "ft:gpt-4o-mini-2024-07-18:mock-org:hybridtune:")
            for split, name in (("training_file", "openai_train.jsonl"), ("validation_file", "openai_valid.jsonl")):
                uploaded = api.get(f"/files/{state[split]}/content").content
                assert uploaded == (run_dir / "mix" / v / name).read_bytes(), f"{v} {split} is not the export"
        assert (reg["base"]["backend"], reg["base"]["model"]) == ("openai", "gpt-4o-mini-2024-07-18")
        # the evaluation talked to each variant by its model name
        for v in ("base", "real", "hybrid"):
            assert stats["models"].get(reg[v]["model"], 0) > 0, (v, stats["models"])
        assert (run_dir / "report" / "report.md").exists()


@pytest.mark.timeout(900)
def test_gpu_config_end_to_end_serves_each_adapter_by_name(tmp_path):
    base = "Qwen/Qwen2.5-7B-Instruct"
    env = annomi_by_name(tmp_path)
    vllm = MockServer(MockConfig(mode="vllm", served_model=base, runtime_lora=True))
    large = MockServer(MockConfig(mode="vllm", served_model="Qwen/Qwen2.5-72B-Instruct"))  # run checks that it serves that model
    with vllm as vurl, large as lurl:
        sets = [*tiny(tmp_path), f"endpoints.vllm.base_url={vurl}", f"endpoints.large.base_url={lurl}",
                "safety.guard_endpoint=null", "train.device=cpu",  # a GPU config trains on a CPU only when told
                "train.base_model=smollm2", "train.launcher=accelerate", *TINY, "train.max_seq_len=512"]
        ok(hybridtune(args("configs/gpu.yaml", sets), env=env, timeout=800))
        stats = vllm.stats()
    run_dir = tmp_path / "runs" / "gpu"
    reg = json.loads((run_dir / "models.json").read_text())
    assert (reg["base"]["backend"], reg["base"]["model"], reg["base"]["endpoint"]) == ("openai", base, "vllm")
    for v in ("real", "hybrid"):
        e = reg[v]
        assert e["backend"] == "openai" and e["endpoint"] == "vllm" and e["model"] == f"{v}-{e['data_hash'][:8]}"
        assert (Path(e["adapter"]) / "adapter_config.json").is_file()
        assert e["metrics"]["processes"] == 1 and e["metrics"]["steps"] == 2  # trained under accelerate launch
    assert stats["lora_loads"] == 2
    for v in ("base", "real", "hybrid"):  # the counselor's requests carry each variant's name
        assert stats["models"].get(reg[v]["model"], 0) > 0, (v, stats["models"])
    lik = json.loads((run_dir / "likelihood" / "_done.json").read_text())  # vLLM's prompt_logprobs, per adapter
    assert lik["variants"] == 3 and lik["skipped"] == 0
    assert (run_dir / "report" / "report.md").exists()
