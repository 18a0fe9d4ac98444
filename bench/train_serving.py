"""Generation speed of a fine-tuned variant through llama.cpp (base GGUF + GGUF LoRA adapter)
divided by the base model's, same prompts, same seed, through the project's llamacpp backend.

The adapter is the hybrid variant's from a run directory when given (`--adapter`), else a
freshly initialised LoRA of the default shape (r=16 on all 7 projections; speed depends on
the adapter's shape, not its values), converted with hybridtune.train.gguf_lora.

    .venv/bin/python bench/train_serving.py [--adapter runs/demo/train/hybrid/adapter.gguf]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import Result, record

PROMPTS = ["I failed one exam, so I'm a failure.", "My boss frowned at me, so he must hate me.",
           "I can't stop thinking that I'll mess up my presentation.", "Everyone at the party thought I was boring.",
           "I feel like nothing I do matters."]


def default_adapter(tmp: Path) -> Path:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from hybridtune.train.base_model import prepare_base
    from hybridtune.train.config import TrainConfig
    from hybridtune.train.gguf_lora import to_gguf
    from hybridtune.train.local import lora_config

    tc = TrainConfig()
    folder, gguf = prepare_base(tc)
    pm = get_peft_model(AutoModelForCausalLM.from_pretrained(str(folder)), lora_config(tc))
    torch.manual_seed(0)
    for n, p in pm.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.01)
    pm.save_pretrained(str(tmp))
    return to_gguf(tmp, gguf, tmp / "adapter.gguf")


def speed(lora: Path | None, max_tokens: int) -> tuple[int, float]:
    from hybridtune.llm.config import EndpointConfig
    from hybridtune.llm.base import ChatRequest
    from hybridtune.llm.llamacpp import LlamaCppBackend

    be = LlamaCppBackend(EndpointConfig(model="smollm2", n_ctx=1024, lora_path=str(lora) if lora else None), "bench")
    be.llama  # load outside the timing
    toks, secs = 0, 0.0
    for p in PROMPTS:
        req = ChatRequest(messages=[{"role": "user", "content": p}], model="smollm2", temperature=0.7,
                          max_tokens=max_tokens, seed=1)
        t0 = time.perf_counter()
        c = asyncio.run(be.complete(req))
        secs += time.perf_counter() - t0
        toks += c.completion_tokens
    return toks, secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", type=Path)
    ap.add_argument("--max-tokens", type=int, default=96)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        adapter = a.adapter or default_adapter(Path(tmp))
        runs = {"base": [], "lora": []}
        for arm in ("base", "lora", "lora", "base"):  # ABBA against drift on a shared machine
            runs[arm].append(speed(None if arm == "base" else adapter, a.max_tokens))
            print(arm, runs[arm][-1], flush=True)
    tps = {k: sum(t for t, _ in v) / sum(s for _, s in v) for k, v in runs.items()}
    ratio = round(tps["lora"] / tps["base"], 3)
    cmd = ".venv/bin/python bench/train_serving.py" + (f" --adapter {a.adapter}" if a.adapter else "")
    record("train_serving", [Result(
        "Generation speed of a LoRA variant via llama.cpp (GGUF adapter)", f"{tps['lora']:.1f} tok/s",
        f"base model {tps['base']:.1f} tok/s", ratio, ">= 0.8", ratio >= 0.8, cmd,
        notes=f"{len(PROMPTS)} prompts x {a.max_tokens} max tokens, 2 passes per arm (ABBA); adapter "
              + ("given" if a.adapter else "r=16 on q,k,v,o,gate,up,down"),
        extra={"runs": runs})])


if __name__ == "__main__":
    main()
