"""GPU smoke test of the training path, one script under 8 minutes on one H100 (issue 32).

Offline (no network, no vLLM); TRL comes from `--wheels DIR` when it is not installed.
1. base: a Llama with random weights and SmolLM2's tokenizer (`--size small`: SmolLM2-135M's
   shape; `--size tiny`: 2 layers x 32 for the CPU check), saved as a transformers folder;
2. data: `mix/real` and `mix/hybrid` of a run folder (short counselling dialogues, different
   per variant), where the mix stage writes them;
3. strategies: the train stage's own launch line (`train/launch.py: launch_command`) trains both
   variants under ddp, then fsdp (and deepspeed_zero3 where DeepSpeed imports) on the GPU; under
   `--cpu` ddp with 2 processes over gloo (FSDP and ZeRO-3 need a GPU). Each saved adapter must
   pass `local.verify_adapter`, reload with PEFT and move the logits away from the base's;
4. throughput: the ddp launch's training tokens/s (1 process) against a plain TRL SFT script on
   the same data, model, LoRA, batch and steps, in a fresh process on the same device (target
   >= 0.9). Both time `trainer.train()` only.
Results: bench/results/gpu_smoke.json (bench.common.record; on a GPU only) and gpu_smoke.json under
--out; exit 1 when a target is missed.

    python bench/gpu_smoke.py --out $OUT --tokenizer .gpu/smollm2 [--wheels .gpu/wheels]   # a CUDA machine
    python bench/gpu_smoke.py --cpu --size tiny --steps 2 --out /tmp/smoke                 # CPU (tests/test_gpu_smoke.py)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Result, record  # noqa: E402

sys.path.insert(0, str(ROOT))
SIZES = {"tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2),
         "small": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                       num_key_value_heads=3)}
VARIANTS = ("real", "hybrid")
SEQ, LR = 512, 1e-3
USER = ["I can't stop thinking I'll fail my exam.", "My friend didn't text back, so she must hate me.",
        "I made one mistake at work and now I feel useless.", "Everyone at the party thought I was boring."]
REPLY = ["What goes through your mind right before that thought?", "Let's look at the evidence for and against it.",
         "Is there another way to see what happened?", "What would you tell a friend who thought that?"]


def ensure_trl(wheels: Path | None) -> None:
    """TRL from the carried wheels when this machine has none (no network there)."""
    if importlib.util.find_spec("trl") is not None:
        return
    if wheels is None:
        sys.exit("trl is not installed and no --wheels folder was given")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), "trl"],
                   check=True)


def tokenizer_source(path: Path | None):
    from transformers import AutoTokenizer

    if path is not None:
        return AutoTokenizer.from_pretrained(str(path))
    from hybridtune.llm.llamacpp import find_gguf

    gguf = find_gguf("smollm2")
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def make_base(out: Path, size: str, tokenizer: Path | None) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (out / "config.json").is_file():
        return out
    tok = tokenizer_source(tokenizer)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **SIZES[size])
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def dialogue(i: int, variant: str) -> list[dict]:
    msgs = [{"role": "system", "content": "You are a CBT counselor."}]
    for t in range(3):
        msgs.append({"role": "user", "content": USER[(i + t) % len(USER)]})
        msgs.append({"role": "assistant", "content": f"({variant}) " + REPLY[(i * 3 + t) % len(REPLY)]})
    return msgs


def write_run(runs: Path, base: Path, cpu: bool, steps: int, n: int = 64) -> Path:
    """A run folder (runs/<name>/config.yaml + mix/<variant>/) for the launch line."""
    import yaml

    from hybridtune.config import load_config

    sets = [f"runs_dir={runs}", "endpoints.local.backend=fake", f"train.base_model={base}", "train.launcher=accelerate",
            f"train.max_steps={steps}", "train.batch_size=4", "train.grad_accum=1", f"train.max_seq_len={SEQ}",
            f"train.learning_rate={LR}", "train.save_steps=100000", "train.eval_steps=100000", "train.logging_steps=5",
            "train.gguf_adapter=false", "train.lora_r=8", "train.lora_alpha=16",
            *(["train.device=cpu", "train.threads=1"] if cpu else ["train.device=cuda", "train.num_processes=1"])]
    cfg = load_config(ROOT / "configs" / "demo.yaml", sets)
    for v in VARIANTS:
        folder = cfg.run_dir / "mix" / v
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in (("train", range(n)), ("valid", range(1000, 1002))):
            (folder / f"{split}.jsonl").write_text("".join(
                json.dumps({"id": f"{v}-{i}", "source": "real", "messages": dialogue(i, v)}) + "\n" for i in rows))
    (cfg.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.resolved_dict(), sort_keys=False))
    return cfg.run_dir / "config.yaml"


def launch(config: Path, strategy: str, cpu: bool, log: Path) -> dict:
    """The train stage's launch line for both variants under one strategy; metrics per variant."""
    import yaml

    from hybridtune.config import load_config
    from hybridtune.train.hardware import training_gpus
    from hybridtune.train.launch import launch_command

    data = yaml.safe_load(config.read_text())  # the ranks read the strategy from the config too
    data["train"].update(accelerate_config=strategy, **({"num_processes": 2} if cpu else {}))
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    tc = load_config(config).train
    cmd = launch_command(tc, config, list(VARIANTS), gpus=training_gpus(tc), resume=False)
    run = config.parent
    for v in VARIANTS:
        (run / "train" / v / "metrics.json").unlink(missing_ok=True)
        (run / "train" / v / "adapter" / "adapter_model.safetensors").unlink(missing_ok=True)
    t0 = time.time()
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    out = {"strategy": strategy, "rc": rc, "wall_s": round(time.time() - t0, 1), "cmd": " ".join(cmd[1:]),
           "variants": {}}
    for v in VARIANTS:
        m = run / "train" / v / "metrics.json"
        out["variants"][v] = json.loads(m.read_text()) if m.is_file() else None
    return out


def check_adapters(run: Path, base: Path) -> dict:
    """Each variant's adapter: verified, reloaded with PEFT, logits moved from the base's and from each other."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from hybridtune.errors import UserError
    from hybridtune.train.local import verify_adapter

    ids = torch.tensor([[1, 20, 300, 4000, 50, 6]])
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)(ids).logits
    out, logits = {}, {}
    for v in VARIANTS:
        adapter = run / "train" / v / "adapter"
        try:
            n = verify_adapter(adapter, base)
        except UserError as e:
            out[v] = {"ok": False, "why": str(e)[:300]}
            continue
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                                          str(adapter))
        with torch.no_grad():
            logits[v] = model(ids).logits
        diff = float((logits[v] - ref).abs().max())
        out[v] = {"ok": diff > 1e-4, "lora_tensors": n, "max_logit_change": round(diff, 5)}
    if len(logits) == 2:
        out["variants_differ"] = float((logits["real"] - logits["hybrid"]).abs().max()) > 1e-5
    return out


def plain_trl(config: Path, variant: str, result: Path) -> None:
    """A plain TRL SFT run of one variant (what a practitioner would write), timed like the tool's."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from hybridtune.config import load_config

    cfg = load_config(config)
    tc = cfg.train
    rows = [json.loads(x)["messages"] for x in (cfg.run_dir / "mix" / variant / "train.jsonl").read_text().splitlines()]
    gpu = tc.device != "cpu" and torch.cuda.is_available()
    bf16 = gpu and torch.cuda.is_bf16_supported()
    if tc.threads:
        torch.set_num_threads(tc.threads)
    args = SFTConfig(output_dir=str(result.parent / "plain"), max_length=tc.max_seq_len, per_device_train_batch_size=tc.batch_size,
                     gradient_accumulation_steps=tc.grad_accum, learning_rate=tc.learning_rate, max_steps=tc.max_steps,
                     lr_scheduler_type="cosine", warmup_steps=tc.warmup_ratio, seed=tc.seed, save_strategy="no",
                     report_to="none", logging_steps=tc.logging_steps, use_cpu=not gpu, bf16=bf16,
                     include_num_input_tokens_seen="non_padding", dataloader_num_workers=0, disable_tqdm=True)
    model = AutoModelForCausalLM.from_pretrained(tc.base_model, dtype=torch.bfloat16 if bf16 else torch.float32)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([{"messages": r} for r in rows]),
                         processing_class=AutoTokenizer.from_pretrained(tc.base_model),
                         peft_config=LoraConfig(r=tc.lora_r, lora_alpha=tc.lora_alpha, lora_dropout=tc.lora_dropout,
                                                target_modules=list(tc.target_modules), task_type="CAUSAL_LM"))
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    tokens = int(trainer.state.num_input_tokens_seen)
    result.write_text(json.dumps({"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": tokens / seconds}))


def results(launches: list[dict], checks: dict, plain: dict | None, device: str, cpu: bool) -> list[Result]:
    cmd = "python bench/gpu_smoke.py " + ("--cpu --size tiny --steps 2 --out /tmp/smoke" if cpu else "--out $OUT")
    out = []
    for run in launches:
        chk = checks.get(run["strategy"], {})
        ok = run["rc"] == 0 and all(chk.get(v, {}).get("ok") for v in VARIANTS) and chk.get("variants_differ", False)
        out.append(Result(
            benchmark=f"{run['strategy']}: both variants trained through the launch line, saved, reloaded with PEFT",
            figure=f"rc {run['rc']}, adapters ok: " + ", ".join(f"{v} {chk.get(v, {}).get('ok')}" for v in VARIANTS),
            baseline="the random base's logits", ratio=None, target="rc 0, every adapter loads and moves the logits",
            met=ok, command=cmd, notes=device, extra={"launch": run, "checks": chk}))
    ddp = next((r for r in launches if r["strategy"] == "ddp" and r["variants"].get("real")), None)
    if ddp and plain:
        tool = ddp["variants"]["real"]["tokens_per_s"]
        ratio = round(tool / plain["tokens_per_s"], 3)
        out.append(Result(benchmark="training tokens/s through the tool (ddp launch line, variant real)",
                          figure=f"{tool:,.0f} tokens/s", baseline=f"{plain['tokens_per_s']:,.0f} tokens/s, plain TRL SFT "
                          "script, same data, model, LoRA, batch and steps, same device", ratio=ratio,
                          target="not compared on the CPU (2 processes against 1)" if cpu else ">= 0.9",
                          met=None if cpu else ratio >= 0.9, command=cmd, notes=device,
                          extra={"tool": ddp["variants"]["real"], "plain": plain}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder; the log and a copy of the results go here")
    ap.add_argument("--cpu", action="store_true", help="no GPU: ddp with 2 CPU processes only")
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tokenizer", type=Path, help="a SmolLM2 tokenizer folder (default: from the packaged GGUF)")
    ap.add_argument("--wheels", type=Path, help="a folder of wheels with TRL, for machines without it")
    ap.add_argument("--plain", nargs=3, metavar=("CONFIG", "VARIANT", "RESULT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        return plain_trl(Path(a.plain[0]), a.plain[1], Path(a.plain[2]))
    ensure_trl(a.wheels)
    import torch

    cpu = a.cpu or not torch.cuda.is_available()
    device = "CPU" if cpu else torch.cuda.get_device_name(0)
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / "gpu_smoke.log"
    base = make_base(a.out / f"base-{a.size}", a.size, a.tokenizer)
    config = write_run(a.out / "runs", base, cpu, a.steps)
    strategies = ["ddp"] if cpu else ["ddp", "fsdp", *(["deepspeed_zero3"] if importlib.util.find_spec("deepspeed") else [])]
    launches, checks, plain = [], {}, None
    for s in strategies:
        launches.append(launch(config, s, cpu, log))
        checks[s] = check_adapters(config.parent, base)
        print(s, json.dumps({"launch": launches[-1], "checks": checks[s]}), flush=True)
    plain_file = a.out / "plain.json"
    # the plain script trains 1 process; on the CPU the tool's ddp ran 2, so its tokens/s is compared as is
    rc = subprocess.run([sys.executable, __file__, "--out", str(a.out), "--plain", str(config), "real", str(plain_file)],
                        cwd=ROOT, stdout=log.open("a"), stderr=subprocess.STDOUT).returncode
    if rc == 0 and plain_file.is_file():
        plain = json.loads(plain_file.read_text())
    found = results(launches, checks, plain, device, cpu)
    if cpu:  # the CPU check proves the script runs; its figures are not benchmarks
        text = json.dumps([r.__dict__ for r in found], indent=1)
    else:
        text = record("gpu_smoke", found).read_text()
    (a.out / "gpu_smoke.json").write_text(text)
    print(text)
    sys.exit(0 if all(r.met is not False for r in found) else 1)


if __name__ == "__main__":
    main()
