"""CPU LoRA training throughput of `hybridtune train` vs a plain TRL script, and peak memory.

Same model (the cached SmolLM2-135M safetensors), same conversations, same SFT/LoRA
settings, 512-token sequences. Each arm runs in its own subprocess (so peak RSS is its own),
in the order ours, plain, plain, ours to cancel drift from the shared machine; the figure is
each arm's mean of non-padding tokens per second of `trainer.train()`.

    .venv/bin/python bench/train_throughput.py [--steps 6]

Data: the first ESConv dialogues (`data_file`) when present, else built-in sessions.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, Result, data_file, peak_rss_mb, record

SETTINGS = dict(max_steps=6, batch_size=2, grad_accum=1, max_seq_len=512, lora_r=16, lora_alpha=32,
                save_steps=1000, logging_steps=1000, eval_steps=1000, seed=42)
SYSTEM = "You are a warm, collaborative CBT counselor."


def conversations(n: int = 24) -> list[list[dict]]:
    path = data_file("esconv", "train.json", required=False)
    rows = []
    if path is not None:
        for line in path.read_text().splitlines()[:n]:
            msgs = [{"role": "system", "content": SYSTEM}]
            for t in json.loads(line)["dialog"]:
                role = "user" if t["speaker"] == "usr" else "assistant"
                if msgs[-1]["role"] == role:
                    msgs[-1]["content"] += " " + t["text"].strip()
                else:
                    msgs.append({"role": role, "content": t["text"].strip()})
            rows.append(msgs)
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from train.conftest import session

        rows = [[{"role": "system", "content": SYSTEM}, *session(i, "hybrid")["messages"]] * 1 for i in range(n)]
    return rows


def arm_ours(rows, out: Path, steps: int) -> dict:
    from hybridtune.train.config import TrainConfig
    from hybridtune.train.local import train_lora

    m = train_lora(TrainConfig(**{**SETTINGS, "max_steps": steps}), rows, [], out, resume=False, log=lambda s: None)
    return {"tokens": m["tokens"], "seconds": m["seconds"]}


def arm_plain(rows, out: Path, steps: int) -> dict:
    """What a user would write with TRL alone (full-sequence loss: same compute per token)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from hybridtune.train.base_model import prepare_base
    from hybridtune.train.config import TrainConfig

    folder, _ = prepare_base(TrainConfig())
    s = SETTINGS
    args = SFTConfig(output_dir=str(out), max_length=s["max_seq_len"], per_device_train_batch_size=s["batch_size"],
                     gradient_accumulation_steps=s["grad_accum"], learning_rate=2e-4, lr_scheduler_type="cosine",
                     max_steps=steps, seed=s["seed"], save_strategy="no", logging_steps=1000, report_to="none",
                     use_cpu=True, bf16=False, gradient_checkpointing=False, disable_tqdm=True,
                     include_num_input_tokens_seen="non_padding")
    peft = LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=0.05, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    trainer = SFTTrainer(model=str(folder), args=args, train_dataset=Dataset.from_list([{"messages": r} for r in rows]),
                         peft_config=peft)
    t0 = time.time()
    trainer.train()
    return {"tokens": int(trainer.state.num_input_tokens_seen), "seconds": time.time() - t0}


def child(arm: str, steps: int, out: Path) -> None:
    rows = conversations()
    res = (arm_ours if arm == "ours" else arm_plain)(rows, out, steps)
    res["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(res))


def run_arm(arm: str, steps: int, tmp: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", arm, "--steps", str(steps), "--out", str(tmp / arm)],
                         capture_output=True, text=True, check=False)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, f"{arm} failed:\n{out.stderr[-3000:]}"
    return json.loads(line[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=SETTINGS["max_steps"])
    ap.add_argument("--child")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.steps, a.out)
    import tempfile

    from hybridtune.train.base_model import prepare_base
    from hybridtune.train.config import TrainConfig

    prepare_base(TrainConfig())  # cache once, outside the timings
    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in ("ours", "plain", "plain", "ours"):
            runs[arm].append(run_arm(arm, a.steps, Path(tmp)))
            print(arm, runs[arm][-1], flush=True)
    tps = {k: sum(r["tokens"] for r in v) / sum(r["seconds"] for r in v) for k, v in runs.items()}
    ratio = round(tps["ours"] / tps["plain"], 3)
    cmd = f".venv/bin/python bench/train_throughput.py --steps {a.steps}"
    mem = max(r["peak_rss_mb"] for r in runs["ours"])
    record("train_throughput", [
        Result("CPU LoRA training throughput (SmolLM2-135M, 512-token seqs, batch 2)", f"{tps['ours']:.0f} tok/s",
               f"plain TRL script {tps['plain']:.0f} tok/s", ratio, ">= 0.95", ratio >= 0.95, cmd,
               notes="2 runs per arm (ours, plain, plain, ours), each its own process; shared 2-core machine",
               extra={"runs": runs, "settings": {**SETTINGS, "max_steps": a.steps}}),
        Result("Peak memory of a CPU LoRA run at 512-token sequences", f"{mem:.0f} MB peak RSS",
               f"plain TRL script {max(r['peak_rss_mb'] for r in runs['plain']):.0f} MB", None, "recorded", None, cmd),
    ])


if __name__ == "__main__":
    main()
