"""Strategies that really save (issue 32): the adapter check before a variant is registered, and
DDP with 2 CPU processes (gloo) through the launch line the train stage builds, on a tiny random
model with SmolLM2's tokenizer; every saved adapter is loaded with PEFT and moves the logits.

FSDP cannot be driven on a CPU: accelerate 1.15 turns FSDP on only for GPU-like distributed
types (AcceleratorState: MULTI_GPU, MULTI_XPU...), never MULTI_CPU; bench/gpu_smoke.py runs it
where there is a GPU.

    .venv/bin/python -m pytest -q tests/train/test_multiprocess.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridtune.errors import UserError
from tests.train.conftest import TINY


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's tokenizer (chat template included)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from hybridtune.llm.llamacpp import find_gguf

    gguf = find_gguf("smollm2")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out = tmp_path_factory.mktemp("tiny_base")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def lora_logits(base: Path, adapter: Path | None):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model(torch.tensor([[1, 2, 3, 4, 5, 6]])).logits


def test_an_adapter_that_does_not_load_is_refused_before_registration(tiny_base, tmp_path):
    from peft import get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from hybridtune.train.config import TrainConfig
    from hybridtune.train.local import lora_config, verify_adapter

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_base)), lora_config(TrainConfig(lora_r=4)))
    model.save_pretrained(str(tmp_path / "good"))
    assert verify_adapter(tmp_path / "good", tiny_base) == 2 * 2 * 7  # A and B of 7 modules in 2 layers
    bad = tmp_path / "no_weights"  # an FSDP save with a sharded state dict: the config, no weights
    bad.mkdir()
    (bad / "adapter_config.json").write_text((tmp_path / "good" / "adapter_config.json").read_text())
    with pytest.raises(UserError, match="adapter_model.safetensors missing.*FULL_STATE_DICT"):
        verify_adapter(bad, tiny_base)
    save_file({}, str(bad / "adapter_model.safetensors"))  # weights file written, nothing in it
    with pytest.raises(UserError, match="does not load with PEFT.*LoRA tensors missing or empty"):
        verify_adapter(bad, tiny_base)


def test_zero3_switch_comes_before_the_model_is_loaded(tiny_base, tmp_path, monkeypatch):
    """The SFTConfig (which registers DeepSpeed's HfDeepSpeedConfig under accelerate) exists when
    from_pretrained runs, so ZeRO-3 loads each rank's shard instead of the whole model."""
    from hybridtune.train import local
    from hybridtune.train.config import TrainConfig

    order: list[str] = []
    real_cfg, real_load = local.sft_config, local.load_model
    monkeypatch.setattr(local, "sft_config", lambda *a, **k: order.append("args") or real_cfg(*a, **k))
    monkeypatch.setattr(local, "load_model", lambda *a, **k: order.append("model") or real_load(*a, **k))
    rows = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]] * 2
    local.make_trainer(TrainConfig(base_model=str(tiny_base), max_steps=1, max_seq_len=64), rows, [], tmp_path)
    assert order == ["args", "model"]


@pytest.mark.slow  # about a minute on 2 busy cores: two ranks start, join over gloo and train 3 variants
@pytest.mark.timeout(600)
def test_ddp_with_two_cpu_processes_saves_adapters_that_peft_loads(tiny_base, make_cfg, write_mix):
    from hybridtune.pipeline import run_pipeline

    cfg = make_cfg(f"train.base_model={tiny_base}", "train.device=cpu", "train.launcher=accelerate",
                   "train.num_processes=2", "train.accelerate_config=ddp", *TINY, "train.max_seq_len=512",
                   path="configs/demo.yaml")
    trained = [v.name for v in cfg.variant_list() if v.trained]
    for v in trained:
        write_mix(cfg.run_dir, v)
    run_pipeline(cfg, only=["train"])
    reg = json.loads((cfg.run_dir / "models.json").read_text())
    base = lora_logits(tiny_base, None)
    for v in trained:
        e = reg[v]
        assert e["metrics"]["processes"] == 2 and e["metrics"]["steps"] == 2, e["metrics"]
        assert e["metrics"]["lora_tensors"] == 28  # checked with PEFT before it was registered
        assert (lora_logits(tiny_base, Path(e["adapter"])) - base).abs().max() > 1e-6, v
