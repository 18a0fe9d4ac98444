"""Contract tests of hosted fine-tuning against recorded API exchanges (no network).

A `httpx.MockTransport` replays the documented JSON shapes of POST /files,
POST /fine_tuning/jobs, GET /fine_tuning/jobs/{id}, .../events and .../checkpoints, and
records every request, so the tests check what is sent (purpose, hyperparameters, seed,
suffix) and that a killed run follows the same job instead of creating a second one.
"""
from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from hybridtune.llm.config import EndpointConfig
from hybridtune.errors import UserError
from hybridtune.train.config import OpenAIFineTune
from hybridtune.train.openai_ft import finetune

from .conftest import session

T0 = 1732550000
FT_MODEL = "ft:gpt-4o-mini-2024-07-18:org-test:hybridtune:AbC123"


class FakeFineTuningAPI:
    """Documented response shapes of the OpenAI files + fine_tuning endpoints."""

    def __init__(self, polls_until_done: int = 2, fail: bool = False):
        self.requests: list[tuple[str, str, bytes]] = []
        self.polls = 0
        self.polls_until_done = polls_until_done
        self.fail = fail
        self.files = 0

    def job(self, status: str) -> dict:
        done = status == "succeeded"
        return {
            "object": "fine_tuning.job", "id": "ftjob-abc123", "model": "gpt-4o-mini-2024-07-18",
            "created_at": T0, "finished_at": T0 + 600 if done else None,
            "fine_tuned_model": FT_MODEL if done else None, "organization_id": "org-test",
            "result_files": ["file-result"] if done else [], "status": status,
            "validation_file": "file-2", "training_file": "file-1", "trained_tokens": 51234 if done else None,
            "error": {"code": "invalid_training_file", "message": "line 3: too few assistant messages",
                      "param": "training_file"} if status == "failed" else None,
            "seed": 42, "estimated_finish": None, "integrations": [], "user_provided_suffix": "hybridtune",
            "method": {"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}}},
            "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8},
        }

    def events(self) -> dict:
        evs = [{"object": "fine_tuning.job.event", "id": "ftevent-1", "created_at": T0 + 1, "level": "info",
                "message": "Validating training file: file-1", "data": {}, "type": "message"}]
        for s in range(1, min(self.polls, 3) + 1):
            evs.append({"object": "fine_tuning.job.event", "id": f"ftevent-m{s}", "created_at": T0 + 10 * s,
                        "level": "info", "message": f"Step {s}/30: training loss={2.0 / s:.2f}", "type": "metrics",
                        "data": {"step": s, "train_loss": 2.0 / s, "train_mean_token_accuracy": 0.4 + s / 10,
                                 "total_steps": 30}})
        return {"object": "list", "data": list(reversed(evs)), "has_more": False}  # newest first, as the API does

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append((request.method, request.url.path, body))
        path = request.url.path.removeprefix("/v1")
        if path == "/models":
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "gpt-4o-mini-2024-07-18", "object": "model", "created": T0, "owned_by": "system"}]})
        if request.method == "POST" and path == "/files":
            self.files += 1
            return httpx.Response(200, json={"object": "file", "id": f"file-{self.files}", "bytes": len(body),
                                             "created_at": T0, "filename": "train.jsonl", "purpose": "fine-tune",
                                             "status": "processed"})
        if request.method == "POST" and path == "/fine_tuning/jobs":
            return httpx.Response(200, json=self.job("validating_files"))
        if request.method == "GET" and path == "/fine_tuning/jobs":  # the jobs made so far, newest first
            made = self.count("POST", "/fine_tuning/jobs")
            return httpx.Response(200, json={"object": "list", "has_more": False,
                                             "data": [self.job("running")] if made else []})
        if path == "/fine_tuning/jobs/ftjob-abc123":
            self.polls += 1
            status = ("failed" if self.fail else "succeeded") if self.polls >= self.polls_until_done else "running"
            return httpx.Response(200, json=self.job(status))
        if path == "/fine_tuning/jobs/ftjob-abc123/events":
            return httpx.Response(200, json=self.events())
        if path == "/fine_tuning/jobs/ftjob-abc123/checkpoints":
            return httpx.Response(200, json={"object": "list", "has_more": False, "first_id": "ftckpt-1",
                                             "last_id": "ftckpt-1", "data": [{
                "object": "fine_tuning.job.checkpoint", "id": "ftckpt-1", "created_at": T0 + 500,
                "fine_tuned_model_checkpoint": FT_MODEL + ":ckpt-step-20", "step_number": 20,
                "fine_tuning_job_id": "ftjob-abc123",
                "metrics": {"step": 20, "train_loss": 0.6, "train_mean_token_accuracy": 0.8, "valid_loss": 0.7,
                            "valid_mean_token_accuracy": 0.78, "full_valid_loss": 0.71,
                            "full_valid_mean_token_accuracy": 0.77}}]})
        return httpx.Response(404, json={"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.endswith(path))


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    """Deadlines judged against 2026-11-29: OpenAI's fine-tuning stop (2027-01-06) is 38 days away."""
    import hybridtune.provider as provider

    monkeypatch.setattr(provider, "today", lambda: date(2026, 11, 29))


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-not-a-real-key")
    return FakeFineTuningAPI()


def export(path, n: int):
    """An export file as the mix stage writes it (one {"messages": [...]} per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"messages": session(i, "hybrid")["messages"]}) + "\n" for i in range(n)))
    return path


def run(api, tmp_path, oc=None, sleep=lambda s: None, n=12):
    ep = EndpointConfig(backend="openai", base_url="https://api.test/v1", api_key_env="TEST_OPENAI_KEY")
    oc = oc or OpenAIFineTune(n_epochs=3, batch_size=1, learning_rate_multiplier=1.8, suffix="hybridtune")
    logs: list[str] = []
    files = {"train": export(tmp_path / "mix" / "openai_train.jsonl", n),
             "valid": export(tmp_path / "mix" / "openai_valid.jsonl", 2)}
    res = finetune(oc, ep, "openai", files, tmp_path / "job", data_hash="h1", seed=42,
                   http_client=httpx.Client(transport=httpx.MockTransport(api)), log=logs.append, sleep=sleep)
    return res, logs


def test_upload_create_follow_record(api, tmp_path):
    res, logs = run(api, tmp_path)
    assert res["model"] == FT_MODEL and res["job_id"] == "ftjob-abc123" and res["trained_tokens"] == 51234
    assert res["checkpoints"] == [FT_MODEL + ":ckpt-step-20"]
    assert res["hyperparameters"]["learning_rate_multiplier"] == 1.8
    # what was sent: two uploads for fine-tuning, one job with our settings
    uploads = [b for m, p, b in api.requests if m == "POST" and p.endswith("/files")]
    assert len(uploads) == 2 and all(b'name="purpose"' in u and b"fine-tune" in u for u in uploads)
    exported = (tmp_path / "mix" / "openai_train.jsonl").read_bytes()
    assert b"\r\n\r\n" + exported + b"\r\n--" in uploads[0]  # the export's bytes, not a re-serialisation
    (create,) = [json.loads(b) for m, p, b in api.requests if m == "POST" and p.endswith("/fine_tuning/jobs")]
    assert create["model"] == "gpt-4o-mini-2024-07-18" and create["seed"] == 42 and create["suffix"] == "hybridtune"
    assert create["training_file"] == "file-1" and create["validation_file"] == "file-2"
    assert create["method"]["supervised"]["hyperparameters"] == {"n_epochs": 3, "batch_size": 1,
                                                                 "learning_rate_multiplier": 1.8}
    # the provider's deadlines first (from its model list), then events once each, in time order
    assert "gpt-4o-mini-2024-07-18 @ openai (fine-tuning): shuts down on 2027-01-14, in 46 days" in logs[0]
    assert "stops new fine-tuning jobs on 2027-01-06, in 38 days" in logs[1] and "configs/gpu.yaml" in logs[1]
    assert logs[3].endswith("Validating training file: file-1") and sum("Step 1/30" in m for m in logs) == 1
    csv_lines = (tmp_path / "job" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,train_loss") and len(csv_lines) == 3
    assert res["last"]["step"] == 2.0
    state = json.loads((tmp_path / "job" / "openai_job.json").read_text())
    assert state["job_id"] == "ftjob-abc123" and "sk-test" not in (tmp_path / "job" / "openai_job.json").read_text()


def test_killed_while_following_resumes_the_same_job(api, tmp_path):
    def killed(_s):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(api, tmp_path, sleep=killed)
    assert api.count("POST", "/fine_tuning/jobs") == 1
    res, logs = run(api, tmp_path)  # the rerun
    assert api.count("POST", "/fine_tuning/jobs") == 1 and api.count("POST", "/files") == 2
    assert res["model"] == FT_MODEL and "following existing job ftjob-abc123" in logs[0]


def test_failed_job_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    api = FakeFineTuningAPI(polls_until_done=1, fail=True)
    with pytest.raises(UserError, match="ftjob-abc123 failed .invalid_training_file: line 3"):
        run(api, tmp_path)


def test_no_job_after_the_provider_stopped_fine_tuning(api, tmp_path, monkeypatch):
    import hybridtune.provider as provider

    monkeypatch.setattr(provider, "today", lambda: date(2027, 1, 6))
    with pytest.raises(UserError, match="stopped new fine-tuning jobs on 2027-01-06.*configs/gpu.yaml"):
        run(api, tmp_path)
    assert api.count("POST", "/files") == 0 and api.count("POST", "/fine_tuning/jobs") == 0


def test_too_few_examples_and_missing_key_fail_before_any_upload(api, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="at least 10"):
        run(api, tmp_path, n=3)
    monkeypatch.delenv("TEST_OPENAI_KEY")
    with pytest.raises(UserError, match="TEST_OPENAI_KEY is not set"):
        run(api, tmp_path)
    assert api.requests == []


def test_train_stage_registers_openai_variants(api, make_cfg, write_mix, monkeypatch):
    import hybridtune.train.openai_ft as oft
    from hybridtune.context import open_run
    from hybridtune.registry import counselor_llm, load_registry
    from hybridtune.train.stage import run as train_run

    real_make = oft.make_client
    monkeypatch.setattr(oft, "make_client", lambda ep, name, http_client=None: real_make(
        ep, name, httpx.Client(transport=httpx.MockTransport(api))))
    cfg = make_cfg("train.backend=openai", "variants={base: {sources: []}, hybrid: {real_share: 0.5}}", "train.openai.poll_s=0.01",
                   "endpoints.openai.backend=openai", "endpoints.openai.base_url=https://api.test/v1",
                   "endpoints.openai.api_key_env=TEST_OPENAI_KEY")
    write_mix(cfg.run_dir, "hybrid", n=12)
    with open_run(cfg) as ctx:
        ctx.run_stage("train", train_run)
        reg = load_registry(ctx.store)
        assert reg["base"].backend == "openai" and reg["base"].model == "gpt-4o-mini-2024-07-18"
        e = reg["hybrid"]
        assert (e.backend, e.model, e.endpoint) == ("openai", FT_MODEL, "openai")
        assert e.job_id == "ftjob-abc123" and e.metrics["trained_tokens"] == 51234 and e.data_hash
        assert e.hyperparameters["n_epochs"] == 3 and e.metrics["train_sessions"] == 12
        llm = counselor_llm(ctx, e)
        assert llm.model == FT_MODEL and llm.backend.endpoint_name == "openai"
        # rerun: already registered with the same data -> no new upload or job
        before = len(api.requests)
        assert ctx.run_stage("train", train_run, force=True)["skipped"] == ["hybrid"]
        assert len(api.requests) == before


def test_train_seeds_train_every_variant_once_per_seed(api, make_cfg, write_mix, monkeypatch):
    """Issue 27: train.seeds trains each trained variant once per seed (variant~s<seed>, with that
    seed sent to the job), the untrained base once."""
    import hybridtune.train.openai_ft as oft
    from hybridtune.context import open_run
    from hybridtune.registry import load_registry
    from hybridtune.train.stage import run as train_run

    real_make = oft.make_client
    monkeypatch.setattr(oft, "make_client", lambda ep, name, http_client=None: real_make(
        ep, name, httpx.Client(transport=httpx.MockTransport(api))))
    cfg = make_cfg("train.backend=openai", "variants={base: {sources: []}, hybrid: {real_share: 0.5}}",
                   "train.seeds=[11, 12]", "train.openai.poll_s=0.01", "endpoints.openai.backend=openai",
                   "endpoints.openai.base_url=https://api.test/v1", "endpoints.openai.api_key_env=TEST_OPENAI_KEY")
    assert [v.name for v in cfg.variant_list()] == ["base", "hybrid", "hybrid~s12"]
    write_mix(cfg.run_dir, "hybrid", n=12)
    write_mix(cfg.run_dir, "hybrid~s12", n=12)
    with open_run(cfg) as ctx:
        ctx.run_stage("train", train_run)
        reg = load_registry(ctx.store)
    assert set(reg) == {"base", "hybrid", "hybrid~s12"}
    assert (reg["hybrid"].hyperparameters["seed"], reg["hybrid~s12"].hyperparameters["seed"]) == (11, 12)
    seeds = [json.loads(b).get("seed") for m, p, b in api.requests if m == "POST" and p.endswith("/fine_tuning/jobs")]
    assert sorted(seeds) == [11, 12]
