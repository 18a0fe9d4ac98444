"""LoRA training on a CUDA GPU, measured: the train stage's own launch path end to end, and peak GPU memory by model size.

Runs only where a CUDA GPU is present (this project measured it on one H200 lent for the
session; the command line there is in docs/benchmarks_notes.md). Two parts:

1. **launch path.** The `train` stage's own `accelerate launch` line (`train/launch.py`,
   `launch_command`) trains the variants of a run folder made by the gpu.yaml end-to-end
   test (`mix/<variant>/train.jsonl`) with TRL + PEFT: on the GPU (bf16, one process per GPU),
   then the same line with the GPU hidden (`--cpu`) on the same machine as the baseline.
   The base has SmolLM2-135M's architecture and tokenizer with randomly initialised weights
   (the 94 MB GGUF cannot travel to the GPU machine; random weights change neither speed
   nor memory, only the loss values, which are not reported as results).
2. **memory by size.** Qwen2.5-shaped models (0.5B to 32B, random weights, built on the GPU)
   through the same `train_lora` at batch 1 and 4 x 2048 tokens with gradient checkpointing,
   the LoRA of `TrainConfig`'s defaults: peak allocated and reserved GPU memory and seconds
   per step, beside `base_model.estimate_gpu_bytes` (which the train stage checks before
   training and docs/training.md tabulates).

    python bench/gpu_train.py --run .gpu/runs/gpu --tokenizer .gpu/smollm2 --out $OUT
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import time
from pathlib import Path

from common import ROOT, Result, record

# Qwen2.5 instruct shapes (their config.json): hidden, intermediate, layers, heads, kv heads, vocab, tied
QWEN = {
    "0.5B": (896, 4864, 24, 14, 2, 151936, True),
    "1.5B": (1536, 8960, 28, 12, 2, 151936, True),
    "3B": (2048, 11008, 36, 16, 2, 151936, True),
    "7B": (3584, 18944, 28, 28, 4, 152064, False),
    "14B": (5120, 13824, 48, 40, 8, 152064, False),
    "32B": (5120, 27648, 64, 40, 8, 152064, False),
}
GiB = 2**30
SEQ, BATCH = 2048, 4  # the launch-path shape (configs/gpu.yaml's batch and sequence length)


def random_base(tokenizer: Path, out: Path) -> Path:
    """SmolLM2-135M's architecture and tokenizer with random weights, saved as a transformers folder."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not (out / "model.safetensors").is_file():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(tokenizer)))
        model.save_pretrained(str(out))
        AutoTokenizer.from_pretrained(str(tokenizer)).save_pretrained(str(out))
    return out


def launch(run: Path, base: Path, steps: int, gpu: bool, log: Path, accel: str = "ddp") -> dict:
    """The train stage's accelerate line for every trainable variant of `run`; their metrics.json."""
    import yaml

    from hybridtune.train.hardware import cuda_gpus
    from hybridtune.train.launch import launch_command
    from hybridtune.train.config import TrainConfig

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    variants = sorted(p.name for p in (run / "mix").iterdir() if (p / "train.jsonl").is_file()
                      and cfg["variants"].get(p.name, {}).get("sources", ["x"]) != [])
    cfg["runs_dir"] = str(run.parent.resolve())
    cfg["train"].update(base_model=str(base.resolve()), max_steps=steps, max_seq_len=SEQ, batch_size=BATCH,
                        grad_accum=1, save_steps=10_000, eval_steps=10_000, logging_steps=5, gguf_adapter=False,
                        gradient_checkpointing=False, launcher="accelerate", accelerate_config=accel)
    path = run / f"config_{'gpu' if gpu else 'cpu'}_{accel}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, **({} if gpu else {"CUDA_VISIBLE_DEVICES": ""}))
    gpus = cuda_gpus() if gpu else 0
    cmd = launch_command(TrainConfig(**cfg["train"]), path, variants, gpus=gpus, resume=False)
    for v in variants:  # a failed launch must not report the previous launch's numbers or adapter
        (run / "train" / v / "metrics.json").unlink(missing_ok=True)
        (run / "train" / v / "adapter" / "adapter_config.json").unlink(missing_ok=True)
    t0 = time.time()
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    wall = time.time() - t0
    out = {v: json.loads((run / "train" / v / "metrics.json").read_text()) for v in variants
           if (run / "train" / v / "metrics.json").is_file()}
    adapters = [v for v in variants if (run / "train" / v / "adapter" / "adapter_config.json").is_file()]
    return {"rc": rc, "wall_s": round(wall, 1), "cmd": " ".join(cmd[1:]), "variants": out, "gpus": gpus,
            "accelerate_config": accel, "adapters": adapters}


def long_rows(n: int, words: int = 900) -> list[list[dict]]:
    """Conversations longer than 2048 tokens with counselor turns throughout (truncated to max_seq_len)."""
    import random

    rng = random.Random(0)
    vocab = ("feel think work sleep family anxious week talk mother job tired plan small step notice "
             "thought worry evidence try better friend night morning because really maybe").split()
    turn = lambda: " ".join(rng.choice(vocab) for _ in range(words // 8))  # noqa: E731
    return [[m for _ in range(8) for m in ({"role": "user", "content": turn()},
                                           {"role": "assistant", "content": turn()})] for _ in range(n)]


def memory(size: str, batch: int, tokenizer: Path, work: Path, steps: int) -> dict:
    """One LoRA run of a Qwen2.5-shaped model through train_lora; peak GPU memory and s/step."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from hybridtune.train import local
    from hybridtune.train.base_model import estimate_gpu_bytes
    from hybridtune.train.config import TrainConfig

    h, inter, layers, heads, kv, vocab, tied = QWEN[size]
    qc = Qwen2Config(hidden_size=h, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
                     num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=tied, max_position_embeddings=32768,
                     rope_theta=1e6, rms_norm_eps=1e-6, torch_dtype="bfloat16")
    built: dict = {}

    def build(folder, tc):  # random bf16 weights made on the GPU (saving 15-65 GB first would only cost time)
        dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
                m = Qwen2ForCausalLM(qc)
        finally:
            torch.set_default_dtype(dtype)
        built["params"] = sum(p.numel() for p in m.parameters())
        return m

    local.load_model = build
    tc = TrainConfig(base_model=str(tokenizer), max_steps=steps, batch_size=batch, grad_accum=1, max_seq_len=2048,
                     gradient_checkpointing=True, save_steps=10_000, logging_steps=1, gguf_adapter=False)
    gc.collect()  # the previous size's trainer and model, before the peak is reset
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    out = work / f"{size}-b{batch}"
    try:
        m = local.train_lora(tc, long_rows(batch * steps), [], out, resume=False, log=lambda s: None)
    except torch.cuda.OutOfMemoryError as e:
        return {"size": size, "batch": batch, "error": f"out of memory: {str(e)[:160]}"}
    est = estimate_gpu_bytes(built["params"], tc, hidden=h, layers=layers, vocab=vocab)
    return {"size": size, "batch": batch, "params_b": round(built["params"] / 1e9, 2),
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GiB, 1),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GiB, 1),
            "estimate_gib": round(est / GiB, 1), "s_per_step": round(m["seconds"] / max(m["steps"], 1), 2),
            "tokens_per_s": m["tokens_per_s"], "steps": m["steps"]}


def results(path_gpu: dict, path_cpu: dict, path_fsdp: dict, mem: list[dict], gpu_name: str) -> list[Result]:
    cmd = "python bench/gpu_train.py --run .gpu/runs/gpu --tokenizer .gpu/smollm2 --out $OUT   # on a CUDA machine"
    out = []
    both = [v for v in path_gpu["variants"] if v in path_cpu["variants"]]  # the same variants on both sides
    tg = [path_gpu["variants"][v]["tokens_per_s"] for v in both]
    tcpu = [path_cpu["variants"][v]["tokens_per_s"] for v in both]
    if tg and tcpu:
        g, c = sum(tg) / len(tg), sum(tcpu) / len(tcpu)
        out.append(Result(
            "LoRA training through the train stage's accelerate launch line, SmolLM2-135M shape, batch 4 x 2048",
            f"{g:,.0f} tokens/s on the GPU ({path_gpu['gpus']} process, bf16)",
            f"{c:,.0f} tokens/s, same line with --cpu on the same machine's {os.cpu_count()} cores", round(g / c, 1),
            "runs on CUDA (launch rc 0, every variant's metrics.json)",
            path_gpu["rc"] == 0 and len(path_gpu["adapters"]) == len(path_gpu["variants"]) > 0, cmd,
            notes=f"{gpu_name}; compared on {', '.join(both)}; random weights (the loss is not a result)"
            + (f"; {path_cpu['note']}" if path_cpu.get("note") else ""),
            extra={"gpu": path_gpu, "cpu": path_cpu}))
    ok = path_fsdp["rc"] == 0 and len(path_fsdp.get("adapters", [])) == len(path_fsdp["variants"]) > 0
    tf = [m["tokens_per_s"] for m in path_fsdp["variants"].values()]
    tg = [m["tokens_per_s"] for m in path_gpu["variants"].values()]
    out.append(Result(
        "The shipped FSDP accelerate config (configs/accelerate/fsdp.yaml) through the same launch line, one GPU",
        f"rc {path_fsdp['rc']}, {len(path_fsdp.get('adapters', []))} adapter(s) saved, "
        + (f"{sum(tf) / len(tf):,.0f} tokens/s" if tf else "no metrics"),
        "the ddp line above", round(sum(tf) / len(tf) / (sum(tg) / len(tg)), 2) if tf and tg else None,
        "trains every variant and saves its adapter", ok, cmd,
        notes=gpu_name + (f"; {path_fsdp['note']}" if path_fsdp.get("note") else ""), extra=path_fsdp))
    for m in mem:
        if "error" in m:
            out.append(Result(f"Qwen2.5-{m['size']} LoRA, batch {m['batch']} x 2048, gradient checkpointing",
                              m["error"], "-", None, "fits the card", False, cmd, notes=gpu_name, extra=m))
            continue
        out.append(Result(
            f"Qwen2.5-{m['size']} LoRA peak GPU memory, batch {m['batch']} x 2048, gradient checkpointing",
            f"{m['peak_reserved_gib']} GiB reserved ({m['peak_allocated_gib']} allocated), {m['s_per_step']} s/step",
            f"estimate_gpu_bytes {m['estimate_gib']} GiB", round(m["peak_reserved_gib"] / m["estimate_gib"], 2),
            "estimate within 0.7-1.3x of the measurement", 0.7 <= m["peak_reserved_gib"] / m["estimate_gib"] <= 1.3,
            cmd, notes=f"{gpu_name}; {m['params_b']}B params; {m['tokens_per_s']:,.0f} tokens/s", extra=m))
    return out


def previous(path: Path) -> tuple[dict, dict, dict, list[dict]]:
    """The raw measurements of an earlier gpu_train.json (what --parts does not rerun keeps these)."""
    rs = json.loads(path.read_text())["results"]
    path = next((r["extra"] for r in rs if "gpu" in r["extra"]), {})
    fsdp = next((r["extra"] for r in rs if r["extra"].get("accelerate_config") == "fsdp"), {})
    mem = [r["extra"] for r in rs if "size" in r["extra"]]
    return path.get("gpu", {}), path.get("cpu", {}), fsdp, mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="run folder with mix/<variant>/train.jsonl and config.yaml")
    ap.add_argument("--tokenizer", type=Path, required=True, help="SmolLM2 config.json + tokenizer files")
    ap.add_argument("--out", type=Path, required=True, help="where the log and results JSON go")
    ap.add_argument("--gpu-steps", type=int, default=30)
    ap.add_argument("--cpu-steps", type=int, default=2)
    ap.add_argument("--sizes", default="7B,0.5B,1.5B,14B,3B,32B", help="Qwen2.5 shapes, most wanted first")
    ap.add_argument("--mem-steps", type=int, default=3)
    ap.add_argument("--parts", default="launch,fsdp,memory,cpu", help="which parts to run (comma-separated)")
    ap.add_argument("--previous", type=Path, help="an earlier gpu_train.json: the parts not rerun keep its figures")
    ap.add_argument("--deadline-s", type=float, default=300, help="start no new memory run after this many seconds")
    a = ap.parse_args()
    import torch

    t0 = time.time()
    gpu_name = torch.cuda.get_device_name(0)
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / "gpu_train.log"
    base = random_base(a.tokenizer, a.run.parent / "smollm2-random")
    parts = a.parts.split(",")
    none = {"rc": None, "variants": {}, "adapters": []}
    path_gpu, path_cpu, path_fsdp, mem = previous(a.previous) if a.previous else (none, none, none, [])
    for part in parts:  # the launches in the order given
        if part == "launch":
            path_gpu = launch(a.run, base, a.gpu_steps, True, log)
            print("gpu launch", json.dumps(path_gpu), flush=True)
        elif part == "fsdp":
            path_fsdp = launch(a.run, base, 10, True, log, accel="fsdp")
            print("fsdp launch", json.dumps(path_fsdp), flush=True)

    def save() -> None:  # after every run, so a run cut short still brings back what it measured
        path = record("gpu_train", results(path_gpu, path_cpu, path_fsdp, mem, gpu_name))
        (a.out / "gpu_train.json").write_text(path.read_text())

    save()
    if "memory" in parts:
        mem = []
        for size in a.sizes.split(","):
            for batch in (1, 4):
                if time.time() - t0 > a.deadline_s:
                    break
                m = memory(size, batch, a.tokenizer, a.run.parent / "mem", a.mem_steps)
                print("memory", json.dumps(m), flush=True)
                mem.append(m)
                save()
    if "cpu" in parts:  # the CPU baseline runs last: it is the slowest part
        path_cpu = launch(a.run, base, a.cpu_steps, False, log)
        print("cpu launch", json.dumps(path_cpu), flush=True)
        save()

if __name__ == "__main__":
    main()
