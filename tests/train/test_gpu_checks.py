"""Checks before the first token of a GPU run (issue 32): the CUDA refusal of the GPU configs, the
training, serving and provider checks that `run` makes before its first stage, the memory fit
against free memory and the strategy's sharding, and the launch line's precision and config file.

    .venv/bin/python -m pytest -q tests/train/test_gpu_checks.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.errors import UserError
from hybridtune.pipeline import run_pipeline
from hybridtune.preflight import check_before_run, preflight
from hybridtune.stages import names, roles_needed
from hybridtune.train import launch
from hybridtune.train.base_model import check_fits
from hybridtune.train.config import TrainConfig
from tests.test_cli import ht

ROOT = Path(__file__).resolve().parents[2]
no_cuda = pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
SEVEN_B = {"hidden": 3584, "layers": 28, "vocab": 152064, "intermediate": 18944}


@no_cuda
@pytest.mark.parametrize("config", ["configs/gpu.yaml", "configs/gpu-1x.yaml"])
def test_gpu_configs_without_cuda_refuse_in_one_line_before_anything(config, tmp_path):
    for extra in (["--dry-run"], []):  # the dry run, and a real run: refused before the run folder exists
        t0 = time.time()
        out = ht("run", config, "--set", f"runs_dir={tmp_path}", *extra)
        assert out.returncode == 2 and time.time() - t0 < 60, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "CUDA" in lines[0] and "`make setup-gpu`" in lines[0], out.stderr
        assert "train.device=cpu" in lines[0]
        assert not any(tmp_path.iterdir()), "nothing may be written"


def gpu_cfg(make_cfg, vurl: str, lurl: str, gurl: str, *extra: str):
    return make_cfg(f"endpoints.vllm.base_url={vurl}", f"endpoints.large.base_url={lurl}",
                    f"endpoints.guard.base_url={gurl}", "train.device=cpu", "train.base_model=smollm2", *extra,
                    path="configs/gpu.yaml", backend="")


def servers(runtime_lora: bool = True):
    return (MockServer(MockConfig(mode="vllm", served_model="Qwen/Qwen2.5-7B-Instruct", runtime_lora=runtime_lora)),
            MockServer(MockConfig(mode="vllm", served_model="Qwen/Qwen2.5-72B-Instruct")),
            MockServer(MockConfig(mode="vllm", served_model="meta-llama/Llama-Guard-3-8B")))


def test_run_checks_the_serving_server_before_the_first_stage(make_cfg):
    """A counselor server that cannot load adapters at runtime is found before personas, not at train."""
    v, large, guard = servers(runtime_lora=False)
    with v as vurl, large as lurl, guard as gurl:
        cfg = gpu_cfg(make_cfg, vurl, lurl, gurl)
        with pytest.raises(UserError, match="checks before the run found problems") as e:
            run_pipeline(cfg)
        assert "cannot load LoRA adapters at runtime" in str(e.value)
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve Qwen/Qwen2.5-7B-Instruct --enable-lora " \
               "--max-lora-rank 16 --max-loras 4" in str(e.value)
        assert sum(s.stats()["models"].get(m, 0) for s, m in ((v, "Qwen/Qwen2.5-7B-Instruct"),
                                                               (large, "Qwen/Qwen2.5-72B-Instruct"))) == 0
    assert not (cfg.run_dir / "real" / "_done.json").exists()


def test_checks_before_run_pass_on_a_ready_layout_and_name_each_check(make_cfg):
    v, large, guard = servers()
    with v as vurl, large as lurl, guard as gurl:
        cfg = gpu_cfg(make_cfg, vurl, lurl, gurl, "train.batch_size=1", "train.max_seq_len=512")
        chosen = names()
        lines = "\n".join(check_before_run(cfg, chosen, roles_needed(chosen, cfg)))
        assert "base model: smollm2" in lines and "training on the CPU" in lines
        assert "serving: endpoint vllm serves Qwen/Qwen2.5-7B-Instruct and loads LoRA adapters at runtime" in lines
        assert "meta-llama/Llama-Guard-3-8B @ guard (safety guard): available" in lines
    # the guard server down: the run is refused, naming it
    cfg = gpu_cfg(make_cfg, vurl, lurl, "http://127.0.0.1:9/v1", "train.batch_size=1", "train.max_seq_len=512")
    with pytest.raises(UserError, match="endpoints.guard.base_url: cannot reach"):
        check_before_run(cfg, ["synth"], roles_needed(["synth"], cfg))


def test_the_printed_vllm_line_follows_lora_r(make_cfg):
    v = MockServer(MockConfig(mode="vllm", served_model="other/model", runtime_lora=True))
    with v as vurl:
        cfg = gpu_cfg(make_cfg, vurl, vurl, vurl, "train.lora_r=32")
        with pytest.raises(UserError) as e:
            preflight(cfg)
    assert "--enable-lora --max-lora-rank 32 --max-loras 4" in str(e.value)


def test_a_non_dry_run_runs_the_provider_check_first(make_cfg, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    srv = MockServer(MockConfig(mode="openai", models="gpt-4o-mini=2020-01-01"))
    with srv as url:
        cfg = make_cfg(f"endpoints.local.base_url={url}", "endpoints.local.model=gpt-4o-mini",
                       path="configs/demo.yaml", backend="openai")
        with pytest.raises(UserError, match=r"gpt-4o-mini @ local .*shut down on 2020-01-01"):
            run_pipeline(cfg, only=["personas"])
        assert srv.stats()["models"] == {}  # no chat request was made
    assert not (cfg.run_dir / "personas" / "personas.jsonl").exists()


def test_the_dry_run_names_a_base_model_not_in_the_cache(make_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = make_cfg("train.base_model=nobody/NoSuchModel-7B", path="configs/demo.yaml")
    with pytest.raises(UserError, match=r"'nobody/NoSuchModel-7B' is not in the local Hugging Face cache .*; run "
                                        r"`hf download nobody/NoSuchModel-7B`"):
        preflight(cfg)


def test_memory_fit_uses_free_memory_and_the_strategys_real_sharding():
    n, gib = 7.6e9, 2**30
    tc = TrainConfig(batch_size=4, max_seq_len=2048, gradient_checkpointing=True)
    check_fits(n, tc, gpus=1, free_bytes=80 * gib, **SEVEN_B)  # a free 80 GB card
    with pytest.raises(UserError, match="the fullest GPU has 20 GiB free") as e:
        check_fits(n, tc, gpus=1, free_bytes=20 * gib, **SEVEN_B)  # the same card with vLLM on it
    assert "--gpu-memory-utilization" in str(e.value)
    ddp = TrainConfig(batch_size=4, max_seq_len=2048, gradient_checkpointing=True, accelerate_config="deepspeed_zero2")
    with pytest.raises(UserError):  # ZeRO-2 keeps a whole copy of the weights on every GPU
        check_fits(n, ddp, gpus=4, free_bytes=20 * gib, **SEVEN_B)
    for sharded in ("deepspeed_zero3", "fsdp"):  # weights split 4 ways fit where one copy does not
        check_fits(n, tc.model_copy(update={"accelerate_config": sharded}), gpus=4, free_bytes=20 * gib, **SEVEN_B)


def test_gpu_1x_training_fits_what_its_servers_leave():
    from hybridtune.config import load_config

    cfg = load_config(ROOT / "configs" / "gpu-1x.yaml")
    left = (1 - 0.35 - 0.22 - 0.08) * 80e9  # the fractions its vLLM lines print
    check_fits(7.6e9, cfg.train, gpus=1, free_bytes=int(left), **SEVEN_B)
    assert "CUDA_VISIBLE_DEVICES=0 VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in (ROOT / "configs" / "gpu-1x.yaml").read_text()
    for c in ("gpu.yaml", "gpu-1x.yaml"):
        cfg = load_config(ROOT / "configs" / c)
        assert cfg.train.device == "cuda" and cfg.safety.guard_endpoint in cfg.endpoints


def test_launch_lines_always_name_a_config_file_and_the_cards_precision(monkeypatch):
    cfg_path = Path("runs/x/config.yaml")
    monkeypatch.setattr(launch, "bf16_supported", lambda: True)
    one = launch.launch_command(TrainConfig(), cfg_path, ["real"], gpus=1)
    assert Path(one[one.index("--config_file") + 1]).name == "ddp.yaml"  # a user's default config cannot apply
    assert one[one.index("--mixed_precision") + 1] == "bf16"
    monkeypatch.setattr(launch, "bf16_supported", lambda: False)  # a V100 or T4
    old = launch.launch_command(TrainConfig(), cfg_path, ["real"], gpus=2)
    assert old[old.index("--mixed_precision") + 1] == "fp16"
    cpu2 = launch.launch_command(TrainConfig(device="cpu", num_processes=2), cfg_path, ["real"], gpus=0)
    assert cpu2[:3] == [sys.executable, "-m", "accelerate.commands.launch"] and "--cpu" not in cpu2
    assert cpu2[cpu2.index("--mixed_precision") + 1] == "no"
    with pytest.raises(UserError, match="train.device=cpu for CPU processes"):
        launch.launch_command(TrainConfig(num_processes=2), cfg_path, ["real"], gpus=0)


def test_shipped_strategies_save_and_launch_multi_node():
    import yaml

    acc = ROOT / "configs" / "accelerate"
    fsdp = yaml.safe_load((acc / "fsdp.yaml").read_text())
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # save_model writes the adapter
    for z in ("deepspeed_zero2", "deepspeed_zero3"):
        assert yaml.safe_load((acc / f"{z}.yaml").read_text())["deepspeed_config"][
            "deepspeed_multinode_launcher"] == "standard"


def test_train_gpus_place_the_launch_and_the_ranks_see_only_them(monkeypatch):
    monkeypatch.setattr(launch, "training_gpus", lambda tc: 1)  # as on a GPU machine
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert launch.launch_env(TrainConfig(gpus="5"))["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,6,7,8,9")  # an outer placement: GPU 5 here is card 9
    assert launch.launch_env(TrainConfig(gpus="5"))["CUDA_VISIBLE_DEVICES"] == "9"
    assert launch.launch_env(TrainConfig())["CUDA_VISIBLE_DEVICES"] == "2,3,6,7,8,9"  # untouched without train.gpus
    from hybridtune.config import load_config

    with pytest.raises(UserError, match="train.gpus"):  # one line naming the key
        load_config(ROOT / "configs" / "gpu.yaml", ["train.gpus=0;rm"])

    assert [load_config(ROOT / "configs" / c).train.gpus for c in ("gpu.yaml", "gpu-1x.yaml")] == ["5", "0"]
