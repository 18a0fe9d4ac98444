"""Local fine-tuning: TRL `SFTTrainer` + PEFT LoRA (QLoRA on a CUDA GPU), CPU by default.

Input: conversations (`messages` lists) for train and valid, a TrainConfig, an output folder.
Output, under `out_dir`: `checkpoints/` (resumable), `adapter/` (PEFT), `loss.csv`,
`loss.png`, and the returned metrics dict (train/eval loss, tokens, seconds, tokens/s).

The loss is on assistant (counselor) tokens only, end-of-turn token included
(`masking.encode_chat`); TRL turns the mask into -100 labels and truncates to
`max_seq_len`. A killed run resumes from its last checkpoint (`resume=True`). Multi-GPU:
the same code under `accelerate launch` (docs/training.md).

    metrics = train_lora(cfg.train, train_rows, valid_rows, Path("runs/demo/train/hybrid"))
"""
from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from .base_model import check_fits, check_qlora, count_params, prepare_base
from .config import TrainConfig
from .masking import encode_chat


def build_datasets(tok, train_rows: list[list[dict]], valid_rows: list[list[dict]], max_len: int):
    """Pre-tokenized datasets: `input_ids` + `assistant_masks` (TRL builds labels from the mask)."""
    from datasets import Dataset

    train_ex = [encode_chat(tok, m) for m in train_rows]
    usable = [ex for ex in train_ex if any(ex["assistant_masks"][:max_len])]
    if not usable:  # TRL would silently drop every example and fail deep inside the sampler
        raise UserError(
            f"train.max_seq_len: at {max_len} tokens no training conversation reaches its first counselor reply "
            "(system prompt + opening turns are longer); raise train.max_seq_len"
        )
    train = Dataset.from_list(train_ex)
    valid_ex = [ex for ex in (encode_chat(tok, m) for m in valid_rows) if any(ex["assistant_masks"][:max_len])]
    return train, (Dataset.from_list(valid_ex) if valid_ex else None)


def sft_config(tc: TrainConfig, out_dir: Path, has_eval: bool):
    """The TRL config every variant shares (only the data differ)."""
    from trl import SFTConfig

    from .hardware import bf16_supported, training_gpus

    gpu = training_gpus(tc) > 0
    return SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        max_length=tc.max_seq_len,
        per_device_train_batch_size=tc.batch_size,
        per_device_eval_batch_size=tc.batch_size,
        gradient_accumulation_steps=tc.grad_accum,
        learning_rate=tc.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=tc.warmup_ratio,  # a float < 1 is a share of the total steps (transformers 5)
        num_train_epochs=tc.epochs,
        max_steps=tc.max_steps,
        seed=tc.seed,
        data_seed=tc.seed,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=tc.eval_steps,
        save_strategy="steps",
        save_steps=tc.save_steps,
        save_total_limit=tc.save_total_limit,
        logging_steps=tc.logging_steps,
        report_to=tc.report_to or "none",
        gradient_checkpointing=tc.gradient_checkpointing,
        use_cpu=not gpu,
        bf16=gpu and bf16_supported(),
        fp16=gpu and not bf16_supported(),  # pre-Ampere GPUs have no bf16
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def lora_config(tc: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=tc.lora_r, lora_alpha=tc.lora_alpha, lora_dropout=tc.lora_dropout,
                      target_modules=list(tc.target_modules), bias="none", task_type="CAUSAL_LM")


def weights_dtype(tc: TrainConfig):
    """bf16 weights on a GPU that has it, fp16 on older GPUs (half the memory; PEFT keeps the LoRA
    weights in fp32 under autocast), fp32 on the CPU."""
    import torch

    from .hardware import bf16_supported, training_gpus

    if training_gpus(tc) == 0:
        return torch.float32
    return torch.bfloat16 if bf16_supported() else torch.float16


def load_model(folder: Path, tc: TrainConfig):
    """The base model. Call it after the SFTConfig exists: under `accelerate launch` with ZeRO-3
    the training arguments register DeepSpeed's config (HfDeepSpeedConfig), and only then does
    `from_pretrained` load each rank's shard (zero.Init) instead of the whole model on every rank."""
    import torch
    from transformers import AutoModelForCausalLM

    if tc.qlora:
        from transformers import BitsAndBytesConfig

        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=weights_dtype(tc))
        return AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=q)
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=weights_dtype(tc))


def preflight(tc: TrainConfig) -> Path:
    """Every check that can fail before training (unknown model, QLoRA without GPU, memory)."""
    check_qlora(tc)
    folder, _ = prepare_base(tc)
    check_fits(count_params(folder=folder), tc, folder)
    return folder


def last_checkpoint(out_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ck = out_dir / "checkpoints"
    return get_last_checkpoint(str(ck)) if ck.is_dir() else None


def make_trainer(tc: TrainConfig, train_rows: list[list[dict]], valid_rows: list[list[dict]], out_dir: Path,
                 callbacks: list | None = None):
    """The SFTTrainer of one variant (after the preflight checks)."""
    import torch
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    folder = preflight(tc)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    tok = AutoTokenizer.from_pretrained(str(folder))
    train_ds, valid_ds = build_datasets(tok, train_rows, valid_rows, tc.max_seq_len)
    args = sft_config(tc, out_dir, valid_ds is not None)  # first: it switches on ZeRO-3's sharded loading
    return SFTTrainer(
        model=load_model(folder, tc), args=args,
        train_dataset=train_ds, eval_dataset=valid_ds, processing_class=tok, peft_config=lora_config(tc),
        callbacks=callbacks,
    )


def loss_text(logs: dict, last: dict) -> str:
    """'loss 2.314, eval 2.402' from the trainer's latest log entries (`last` keeps the other one)."""
    last.update({k: logs[k] for k in ("loss", "eval_loss") if k in logs})
    parts = [f"loss {last['loss']:.3f}"] if "loss" in last else []
    parts += [f"eval {last['eval_loss']:.3f}"] if "eval_loss" in last else []
    return ", ".join(parts)


def _route_logs(trainer, log: Callable[[str], None], progress=None, label: str = "training") -> None:
    """The trainer's progress as one bar (steps, loss, elapsed, ETA) on `progress` (a rich
    Progress), or one short line per log step without one; its raw log dicts only with -v."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from .. import noise

    class _Report(TrainerCallback):
        task = None
        last: dict = {}

        def on_train_begin(self, args, state, control, **kw):
            if progress is not None and state.is_world_process_zero:
                self.task = progress.add_task(label, total=state.max_steps, completed=state.global_step, rate="")

        def on_step_end(self, args, state, control, **kw):
            if self.task is not None:
                progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if not (state.is_world_process_zero and logs):
                return
            text = loss_text(logs, self.last)
            if noise.verbose():
                log(f"step {state.global_step}: " + ", ".join(f"{k}={v}" for k, v in logs.items()))
            if self.task is not None:
                progress.update(self.task, rate=text)
            elif text and not noise.verbose():
                log(f"step {state.global_step}/{state.max_steps}: {text}")

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_Report())


def final_eval_loss(trainer) -> float:
    """The evaluation the trainer ran at its last step (it always evaluates there when eval is on;
    a run resumed at its end finds it in the restored log history). No second pass: a separate
    evaluate() after train() fails under FSDP2 ("got mixed torch.Tensor and DTensor", seen on an
    H200 with configs/accelerate/fsdp.yaml, bench/gpu_train.py) and costs time everywhere."""
    step = trainer.state.global_step
    done = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h and h.get("step") == step]
    return done[-1] if done else trainer.evaluate()["eval_loss"]


def train_lora(tc: TrainConfig, train_rows: list[list[dict]], valid_rows: list[list[dict]], out_dir: Path,
               *, resume: bool = True, callbacks: list | None = None, log: Callable[[str], None] = print,
               progress=None, label: str = "training") -> dict:
    """Fine-tune a LoRA adapter; resumes from the last checkpoint in `out_dir` when `resume`.
    `progress` (a started rich Progress): one bar `label` with steps, loss and ETA."""
    trainer = make_trainer(tc, train_rows, valid_rows, out_dir, callbacks)
    _route_logs(trainer, log, progress, label)
    valid_ds = trainer.eval_dataset
    ck = last_checkpoint(out_dir) if resume else None
    if ck:
        log(f"resuming from {ck}")
    t0 = time.time()
    out = trainer.train(resume_from_checkpoint=ck)
    seconds = time.time() - t0
    eval_loss = final_eval_loss(trainer) if valid_ds is not None else None
    trainer.save_model(str(out_dir / "adapter"))  # main process only; gathers ZeRO-3/FSDP shards
    metrics = {"train_loss": round(out.training_loss, 4), "steps": trainer.state.global_step,
               "tokens": int(trainer.state.num_input_tokens_seen), "seconds": round(seconds, 1),
               "resumed_from": Path(ck).name if ck else None}
    metrics["tokens_per_s"] = round(metrics["tokens"] / max(seconds, 1e-9), 1)
    if eval_loss is not None:
        metrics["eval_loss"] = round(eval_loss, 4)
    if trainer.is_world_process_zero():
        write_loss_curves(trainer.state.log_history, out_dir)
    return metrics


def verify_adapter(adapter: Path, base: Path) -> int:
    """Load a saved adapter with PEFT onto the base model's architecture and return how many LoRA
    tensors the files filled. The base is built on the meta device and only the LoRA layers get
    memory (seconds and megabytes even for a 7B). UserError when the files are missing, empty,
    shaped for another model or leave LoRA weights unset (an FSDP save without a full state dict
    writes none): before a variant is registered, not when a server fails to load it."""
    import torch
    from peft import PeftConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    files = [adapter / "adapter_config.json", adapter / "adapter_model.safetensors"]
    if not all(f.is_file() for f in files):
        raise UserError(f"{adapter}: the trainer saved no adapter ({', '.join(f.name for f in files if not f.is_file())} "
                        "missing); under FSDP the accelerate config needs fsdp_state_dict_type: FULL_STATE_DICT "
                        "(configs/accelerate/fsdp.yaml); rerun the train stage")
    weights = load_file(str(files[1]))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(base)))
    peft = get_peft_model(model, PeftConfig.from_pretrained(str(adapter)))
    for name, module in peft.named_modules():
        if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B"):
            module.to_empty(device="cpu")  # memory for the adapter only; the base stays on meta
    try:
        res = set_peft_model_state_dict(peft, weights)
    except RuntimeError as e:  # size mismatch: trained on another base or rank
        raise UserError(f"{adapter}: the saved adapter does not fit {base.name} ({str(e).splitlines()[-1].strip()}); "
                        "rerun the train stage") from None
    lora = [n for n, _ in peft.named_parameters() if "lora_" in n]
    unset = [k for k in res.missing_keys if "lora_" in k] + [k for k, t in weights.items() if t.numel() == 0]
    if not lora or unset:
        raise UserError(f"{adapter}: the saved adapter does not load with PEFT onto {base.name}: "
                        f"{len(unset)} of {len(lora)} LoRA tensors missing or empty (e.g. {(unset or ['-'])[0]}); "
                        "under FSDP use fsdp_state_dict_type: FULL_STATE_DICT; rerun the train stage")
    return len(lora)


def write_loss_curves(history: list[dict], out_dir: Path) -> None:
    """loss.csv (step, train_loss, eval_loss) and loss.png from the trainer's log history."""
    rows = [(h["step"], h.get("loss"), h.get("eval_loss")) for h in history if "loss" in h or "eval_loss" in h]
    with (out_dir / "loss.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "train_loss", "eval_loss"])
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for col, label in ((1, "train"), (2, "eval")):
        pts = [(r[0], r[col]) for r in rows if r[col] is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o" if len(pts) < 20 else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=100)
    plt.close(fig)
