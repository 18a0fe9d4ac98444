"""Adapters served by vLLM by name: checked, loaded at runtime, loaded again after a restart.

Against the mock vLLM server (`mock_openai --vllm`) in a subprocess, as the real one would run.
"""
from __future__ import annotations

import json

import pytest

import hybridtune.train.vllm_lora as vl
from hybridtune.llm.config import EndpointConfig
from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.errors import UserError

BASE = "Qwen/Qwen2.5-7B-Instruct"


def adapter(tmp_path, r: int = 4) -> str:
    d = tmp_path / "adapter"
    d.mkdir(parents=True, exist_ok=True)
    (d / "adapter_config.json").write_text(json.dumps({"r": r, "peft_type": "LORA"}))
    return str(d)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(vl, "_loaded", set())


def test_adapter_loaded_once_and_again_after_a_restart(tmp_path):
    path = adapter(tmp_path)
    for _restart in range(2):
        vl._loaded.clear()  # a new process meets a new server
        with (srv := MockServer(MockConfig(mode="vllm", served_model=BASE, runtime_lora=True))) as url:
            ep = EndpointConfig(backend="openai", base_url=url, model=BASE)
            vl.ensure_adapter(ep, "vllm", "hybrid-1a2b3c4d", path)
            vl.ensure_adapter(ep, "vllm", "hybrid-1a2b3c4d", path)  # remembered: no second request
            assert srv.stats()["lora_loads"] == 1


def test_server_without_runtime_loading_or_base_is_one_clear_error(tmp_path, make_cfg):
    with MockServer(MockConfig(mode="vllm", served_model="other/model")) as url:
        ep = EndpointConfig(backend="openai", base_url=url, model=BASE)
        with pytest.raises(UserError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.*--lora-modules hybrid-1=/"):
            vl.ensure_adapter(ep, "vllm", "hybrid-1", adapter(tmp_path))
        cfg = make_cfg("endpoints.vllm.backend=openai", f"endpoints.vllm.base_url={url}", f"endpoints.vllm.model={BASE}",
                       "train.serve_endpoint=vllm")
        with pytest.raises(UserError, match=f"serves other/model, not {BASE}; start it with: .*vllm serve {BASE} "
                                            "--enable-lora --max-lora-rank 16"):
            vl.check_server(cfg, cfg.train)


def test_rank_above_the_server_limit_is_refused(tmp_path):
    with MockServer(MockConfig(mode="vllm", served_model=BASE, runtime_lora=True, max_lora_rank=8)) as url:
        ep = EndpointConfig(backend="openai", base_url=url, model=BASE)
        with pytest.raises(UserError, match="LoRA rank 32 is greater than max_lora_rank 8"):
            vl.ensure_adapter(ep, "vllm", "real-1", adapter(tmp_path, r=32))


def test_a_name_already_serving_another_folder_is_one_clear_error(tmp_path):
    first, second = adapter(tmp_path / "a"), adapter(tmp_path / "b")
    with MockServer(MockConfig(mode="vllm", served_model=BASE, runtime_lora=True)) as url:
        ep = EndpointConfig(backend="openai", base_url=url, model=BASE)
        vl.ensure_adapter(ep, "vllm", "hybrid-1a2b3c4d", first)
        vl._loaded.clear()  # another run (another process), the same name for another adapter folder
        with pytest.raises(UserError, match=f"already serves adapter hybrid-1a2b3c4d from {first}, not {second}; "
                                            "unload it"):
            vl.ensure_adapter(ep, "vllm", "hybrid-1a2b3c4d", second)
        vl.ensure_adapter(ep, "vllm", "hybrid-1a2b3c4d", first)  # the folder it serves: fine


def test_refusals_show_the_servers_message_not_its_json(tmp_path):
    with MockServer(MockConfig(mode="vllm", served_model=BASE, runtime_lora=True)) as url:
        ep = EndpointConfig(backend="openai", base_url=url, model=BASE)
        with pytest.raises(UserError) as e:
            vl.ensure_adapter(ep, "vllm", "gone-1", str(tmp_path / "missing"))
    msg = str(e.value)
    assert "HTTP 404 Loading lora gone-1 failed: No adapter found for <path>;" in msg and '{"error"' not in msg, msg
    assert str(tmp_path / "missing") in msg and "\n" not in msg


def test_chat_as_a_model_the_server_lacks_names_what_it_serves(make_cfg):
    import asyncio

    from hybridtune.llm import LLMPool

    with MockServer(MockConfig(mode="vllm", served_model=BASE)) as url:
        cfg = make_cfg("endpoints.vllm.backend=openai", f"endpoints.vllm.base_url={url}", "endpoints.vllm.model=real-1",
                       "roles.counselor.endpoint=vllm")
        with pytest.raises(UserError, match=f"model or path not found at .*The model `real-1` does not exist. "
                                            f"Valid aliases: {BASE}.*check model and base_url"):
            asyncio.run(LLMPool(cfg).role("counselor").chat([{"role": "user", "content": "hi"}]))


def test_real_vllm_tests_run_only_when_asked_for():
    """`make test` and targeted runs deselect the `vllm` tests; `-m vllm` (make test-vllm) selects them."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def collected(*opts: str) -> str:
        return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               "tests/train/test_vllm_real.py", *opts], cwd=root, capture_output=True, text=True,
                              timeout=300).stdout

    for plain in (collected(), collected("-m", "not slow and not browser and not model")):  # make test, test-fast
        assert "::test_" not in plain and "deselected" in plain, plain
    assert "test_vllm_real.py::test_train_stage_serves_each_adapter_by_name_from_real_vllm" in collected("-m", "vllm")
