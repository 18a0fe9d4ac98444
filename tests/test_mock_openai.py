"""The mock OpenAI / vLLM server behaves like the real services the pipeline meets.

Driven in process (Starlette's TestClient is an httpx.Client) through the official `openai`
SDK where the real code uses it: files, fine-tuning jobs (states, events, checkpoints, the
`ft:` model then served), the model list with `shutdown_date`, vLLM's LoRA load/list and
404s for model names a server does not serve.
"""
from __future__ import annotations

import json
import time

import openai
import pytest
from starlette.testclient import TestClient

from hybridtune.devtools.mock_openai import MockConfig, make_app


def sdk(app) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://mock/v1", api_key="sk-test", max_retries=0,
                         http_client=TestClient(app, base_url="http://mock"))


def jsonl(n: int) -> bytes:
    return b"".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": f"a{i}"}]}).encode() + b"\n"
                    for i in range(n))


def wait_done(client, job_id: str, timeout: float = 5.0):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        seen.append(job.status)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job still {seen[-1]}")


def test_files_and_a_fine_tuning_job_like_openai():
    client = sdk(make_app(MockConfig(mode="openai", ft_seconds=0.6)))
    data = jsonl(12)
    f = client.files.create(file=("openai_train.jsonl", data), purpose="fine-tune")
    assert f.bytes == len(data) and f.purpose == "fine-tune" and f.filename == "openai_train.jsonl"
    assert client.files.content(f.id).content == data  # the stored bytes come back unchanged
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=f.id, suffix="ht", seed=3,
                                         method={"type": "supervised", "supervised": {"hyperparameters": {
                                             "n_epochs": 2, "batch_size": "auto"}}})
    assert job.status == "validating_files" and job.fine_tuned_model is None
    done, seen = wait_done(client, job.id)
    assert done.status == "succeeded" and {"queued", "running"} <= set(seen)
    assert done.fine_tuned_model == f"ft:gpt-4o-mini-2024-07-18:mock-org:ht:{job.id[-8:]}"
    assert done.hyperparameters.n_epochs == 2 and done.hyperparameters.batch_size == 1 and done.trained_tokens > 0
    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=100).data
    assert events[0].message == "The job has successfully completed"  # newest first
    assert any(e.type == "metrics" and e.data["step"] == 1 for e in events)
    assert len(client.fine_tuning.jobs.checkpoints.list(job.id).data) == 2
    # the fine-tuned model is listed (inheriting its base's shutdown date) and answers chat
    models = {m.id: m for m in client.models.list()}
    assert models[done.fine_tuned_model].model_dump()["shutdown_date"] == "2027-01-14"
    reply = client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_job_on_a_bad_file_fails_and_unknown_models_404():
    client = sdk(make_app(MockConfig(mode="openai", ft_seconds=0.2)))
    small = client.files.create(file=("t.jsonl", jsonl(3)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=small.id)
    done, _ = wait_done(client, job.id)
    assert done.status == "failed" and done.error.code == "invalid_training_file" and "at least 10" in done.error.message
    with pytest.raises(openai.BadRequestError, match="not available for fine-tuning"):
        client.fine_tuning.jobs.create(model="gpt-5-nope", training_file=small.id)
    with pytest.raises(openai.NotFoundError, match="The model `gpt-5-nope` does not exist") as e:
        client.chat.completions.create(model="gpt-5-nope", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found"


def test_model_list_carries_shutdown_dates():
    client = sdk(make_app(MockConfig(mode="openai", models="gpt-4o-mini=2027-01-14,gpt-4.1-mini")))
    cards = {m.id: m.model_dump() for m in client.models.list()}
    assert cards["gpt-4o-mini"]["shutdown_date"] == "2027-01-14" and cards["gpt-4.1-mini"].get("shutdown_date") is None


def adapter(tmp_path, name: str, r: int = 4):
    d = tmp_path / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": 8, "peft_type": "LORA"}))
    return str(d)


def test_vllm_mode_loads_lists_and_serves_adapters_by_name(tmp_path):
    app = make_app(MockConfig(mode="vllm", served_model="Qwen/Qwen2.5-7B-Instruct", runtime_lora=True, max_lora_rank=8,
                             lora_modules=f"start={adapter(tmp_path, 'start')}"))
    http = TestClient(app, base_url="http://mock")
    client = sdk(app)
    path = adapter(tmp_path, "hybrid")
    r = http.post("/v1/load_lora_adapter", json={"lora_name": "hybrid-1", "lora_path": path})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'hybrid-1' added successfully."
    again = http.post("/v1/load_lora_adapter", json={"lora_name": "hybrid-1", "lora_path": path})
    assert again.status_code == 400 and "already been loaded" in again.text
    assert http.post("/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": str(tmp_path / "none")}).status_code == 404
    big = http.post("/v1/load_lora_adapter", json={"lora_name": "big", "lora_path": adapter(tmp_path, "big", r=64)})
    assert big.status_code == 500 and "max_lora_rank" in big.text  # the worker refuses it, as in vLLM
    cards = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert cards["Qwen/Qwen2.5-7B-Instruct"]["parent"] is None
    assert cards["hybrid-1"]["root"] == path and cards["hybrid-1"]["parent"] == "Qwen/Qwen2.5-7B-Instruct"
    assert "start" in cards and "big" not in cards
    for name in ("Qwen/Qwen2.5-7B-Instruct", "hybrid-1", "start"):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError, match="The model `real-1` does not exist"):
        client.chat.completions.create(model="real-1", messages=[{"role": "user", "content": "hi"}])
    assert http.get("/stats").json()["models"] == {"Qwen/Qwen2.5-7B-Instruct": 1, "hybrid-1": 1, "start": 1}


def test_vllm_without_runtime_updating_has_no_load_route(tmp_path):
    http = TestClient(make_app(MockConfig(mode="vllm", served_model="base")), base_url="http://mock")
    assert http.post("/v1/load_lora_adapter", json={"lora_name": "a", "lora_path": str(tmp_path)}).status_code == 404


def test_vllm_mode_prompt_logprobs_follow_the_rendered_prompt():
    http = TestClient(make_app(MockConfig(mode="vllm", served_model="base")), base_url="http://mock")
    msgs = [{"role": "user", "content": "I feel stuck"}, {"role": "assistant", "content": "Tell me more"}]

    def ask(messages, final: bool, model: str = "base"):
        body = {"model": model, "messages": messages, "max_tokens": 1, "add_generation_prompt": not final}
        return http.post("/v1/chat/completions", json={**body, **({"prompt_logprobs": 0} if final else {})}).json()

    n_ctx = ask(msgs[:1], final=False)["usage"]["prompt_tokens"]
    full = ask(msgs, final=True)
    plp = full["prompt_logprobs"]
    assert plp[0] is None and len(plp) == full["usage"]["prompt_tokens"]
    turn = [next(iter(e.values()))["decoded_token"] for e in plp[n_ctx:]]
    assert turn == ["Tell", "me", "more", "<|im_end|>"]  # exactly the assistant turn's tokens, as vLLM's spans
    assert all(next(iter(e.values()))["logprob"] < 0 for e in plp[1:])


def test_the_mock_config_is_typed_and_refuses_what_it_does_not_know():
    from pydantic import ValidationError

    assert MockConfig(faults="429,500").faults == ("429", "500")  # the command line's comma list
    for bad in ({"mode": "azure"}, {"faults": ("429", "slow")}, {"fault_rate": 1.5}, {"openai": True}, {"hang_s": 2}):
        with pytest.raises(ValidationError):
            MockConfig(**bad)


def test_the_command_line_builds_the_same_config(capsys):
    from hybridtune.devtools.mock_openai import config_of

    cfg, port = config_of(["--port", "9001", "--openai", "--fault-rate", "0.5", "--faults", "429,timeout",
                           "--runtime-lora", "--config", MockConfig(seed=4, delay=0.25, fault_rate=0.1).model_dump_json()])
    assert port == 9001 and cfg == MockConfig(mode="openai", fault_rate=0.5, faults=("429", "timeout"),
                                              runtime_lora=True, seed=4, delay=0.25)  # a flag overrides the JSON
    assert config_of([])[0] == MockConfig()
    with pytest.raises(SystemExit):
        config_of(["--fault-rate", "2"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--fault-rate" in err and "less than or equal to 1" in err


def test_the_config_reaches_every_part_of_the_server(tmp_path):
    """Batch timing and failures (mock_batch), fine-tuning time (mock_finetune) and vLLM settings (mock_vllm)
    read the one MockConfig."""
    from hybridtune.devtools.mock_openai import MockState
    from hybridtune.devtools.mock_vllm import model_cards

    cards = model_cards(MockState(cfg=MockConfig(mode="vllm", served_model="base-x"), adapters={"a": "/p"}))
    assert [(c["id"], c["parent"]) for c in cards] == [("base-x", None), ("a", "base-x")]
    http = TestClient(make_app(MockConfig(mode="vllm", served_model="b")), base_url="http://mock")
    assert http.post("/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/p"}).status_code == 404  # no runtime_lora
    http = TestClient(make_app(MockConfig(batch_seconds=0.3, batch_fail_first=1)), base_url="http://mock")
    f = http.post("/v1/files", files={"file": ("b.jsonl", b"".join(
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}}).encode() + b"\n"
        for i in range(2)))}, data={"purpose": "batch"}).json()
    b = http.post("/v1/batches", json={"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                       "completion_window": "24h"}).json()
    deadline = time.time() + 5
    while (b := http.get(f"/v1/batches/{b['id']}").json())["status"] not in ("completed", "failed"):
        assert time.time() < deadline, b
        time.sleep(0.05)
    assert b["status"] == "completed" and b["request_counts"]["failed"] == 1
