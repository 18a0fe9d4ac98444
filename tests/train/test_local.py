"""Local fine-tuning with the real embedded model (SmolLM2-135M, CPU): label mask, preflight
errors, resume after a mid-training death, the train stage end to end (registry + every
variant answering through the LLM layer via llama.cpp), and the GGUF adapter's numerics.

Training is kept to a couple of steps over ~96-token sequences; the first run also caches
the dequantized base under ~/.cache/hybridtune (about 25 s once)."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from hybridtune.errors import UserError
from hybridtune.train.config import TrainConfig

from .conftest import session

pytestmark = pytest.mark.model

TINY_TC = dict(max_steps=2, batch_size=1, grad_accum=1, max_seq_len=96, save_steps=1, eval_steps=1000,
               logging_steps=1, lora_r=4, lora_alpha=8, threads=1)


def conv(i: int) -> list[dict]:
    return [{"role": "system", "content": "You are a CBT counselor."}, *session(i, "hybrid")["messages"]]


def test_label_mask_trains_exactly_the_assistant_tokens(tmp_path):
    from hybridtune.train.local import make_trainer

    tc = TrainConfig(**{**TINY_TC, "max_seq_len": 512})
    trainer = make_trainer(tc, [conv(0), conv(1)], [], tmp_path)
    tok = trainer.processing_class
    ex = trainer.train_dataset[0]
    labels, ids = ex["labels"], ex["input_ids"]
    trained = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    assert [lab for lab in labels if lab != -100] == trained  # labels are the tokens themselves
    replies = [m["content"] for m in conv(0) if m["role"] == "assistant"]
    assert tok.decode(trained) == "".join(r + "<|im_end|>" for r in replies)
    # each trained run ends with the end-of-turn token, and nothing of the user/system/header is trained
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    runs, cur = [], []
    for t, lab in zip(ids, labels, strict=True):
        if lab != -100:
            cur.append(t)
        elif cur:
            runs.append(cur)
            cur = []
    assert len(runs) == 2 and all(r[-1] == eot for r in runs)
    assert tok.decode(runs[0]) == replies[0] + "<|im_end|>"
    # the collator pads labels with -100, so padding never carries loss
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    pad = batch["attention_mask"] == 0
    assert pad.any() and (batch["labels"][pad] == -100).all()


def test_preflight_errors_come_before_any_training(tmp_path):
    from hybridtune.train.local import preflight

    with pytest.raises(UserError, match="train.base_model: 'gpt-9' is not a known model"):
        preflight(TrainConfig(base_model="gpt-9"))
    with pytest.raises(UserError, match="train.qlora: QLoRA needs the bitsandbytes package and a CUDA GPU"):
        preflight(TrainConfig(qlora=True))
    with pytest.raises(UserError, match=r"needs about .* GiB .* lower train.batch_size"):
        preflight(TrainConfig(batch_size=256, max_seq_len=32768))


def test_killed_mid_training_resumes_from_last_checkpoint(tmp_path):
    from transformers import TrainerCallback

    from hybridtune.train.local import last_checkpoint, train_lora

    class Die(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 1:
                raise KeyboardInterrupt("killed")

    tc = TrainConfig(**TINY_TC)
    rows = [conv(i) for i in range(2)]
    with pytest.raises(KeyboardInterrupt):
        train_lora(tc, rows, rows[:1], tmp_path, callbacks=[Die()])
    assert last_checkpoint(tmp_path).endswith("checkpoint-1")
    m = train_lora(tc, rows, rows[:1], tmp_path)
    assert m["resumed_from"] == "checkpoint-1" and m["steps"] == 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    csv = (tmp_path / "loss.csv").read_text().splitlines()
    assert csv[0] == "step,train_loss,eval_loss" and any(line.startswith("2,") for line in csv[1:])
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_the_final_eval_loss_is_the_trainers_own_last_evaluation(tmp_path):
    """No second evaluation after training (under FSDP2 it fails, bench/gpu_train.py); a run resumed
    at its last step, with nothing left to train, reports the same loss from the restored history."""
    from transformers import TrainerCallback

    from hybridtune.train.local import train_lora

    evals: list[float] = []

    class Count(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kw):
            evals.append(metrics["eval_loss"])

    tc = TrainConfig(**TINY_TC)
    rows = [conv(i) for i in range(2)]
    m = train_lora(tc, rows, rows[:1], tmp_path, callbacks=[Count()])
    assert len(evals) == 1 and m["eval_loss"] == round(evals[0], 4)
    again = train_lora(tc, rows, rows[:1], tmp_path, callbacks=[Count()])  # resumes at checkpoint-2: nothing to train
    assert again["resumed_from"] == "checkpoint-2" and len(evals) == 1 and again["eval_loss"] == m["eval_loss"]


def test_train_stage_registers_variants_that_answer_via_llamacpp(make_cfg, write_mix, tmp_path):
    from hybridtune.context import open_run
    from hybridtune.registry import counselor_llm, load_registry
    from hybridtune.train.stage import run

    from .conftest import TINY

    cfg = make_cfg(*TINY, "train.learning_rate=0.02", "train.max_steps=2", "roles.counselor.temperature=0",
                   "roles.counselor.max_tokens=12", "endpoints.local.n_ctx=512", backend="llamacpp")
    write_mix(cfg.run_dir, "real")
    write_mix(cfg.run_dir, "hybrid")
    with open_run(cfg) as ctx:
        summary = ctx.run_stage("train", run)
        assert summary["trained"] == ["real", "hybrid"]
        reg = load_registry(ctx.store)
        assert set(reg) == {"base", "real", "hybrid"}
        assert reg["base"].backend == "llamacpp" and reg["base"].adapter is None
        for v in ("real", "hybrid"):
            e = reg[v]
            assert e.backend == "llamacpp" and e.adapter.endswith(f"train/{v}/adapter.gguf")
            assert e.hyperparameters["max_steps"] == 2 and e.hyperparameters["seed"] == reg["base"].hyperparameters["seed"]
            assert e.metrics["steps"] == 2 and "eval_loss" in e.metrics and e.data_hash
            assert e.system_prompt == ctx.system_prompt
        assert reg["real"].data_hash != reg["hybrid"].data_hash

        prompt = [{"role": "system", "content": ctx.system_prompt},
                  {"role": "user", "content": "I failed one exam, so I'm a failure."}]

        async def ask(v):
            return (await counselor_llm(ctx, reg[v]).chat(prompt)).text

        answers = {v: asyncio.run(ask(v)) for v in ("base", "hybrid")}
        assert answers["base"].strip(), answers  # a tiny over-trained adapter may stop at once; base must talk
        assert answers["hybrid"] != answers["base"], answers

        # a rerun with the same data and settings trains nothing
        again = ctx.run_stage("train", run, force=True)
        assert again["trained"] == [] and again["skipped"] == ["real", "hybrid"]
    snap = json.loads((cfg.run_dir / "train" / "models.json").read_text())
    assert set(snap) == {"base", "real", "hybrid"}


def test_gguf_adapter_matches_the_peft_model_in_llamacpp(tmp_path):
    """Random LoRA on q/k/v: the logit change llama.cpp computes with the GGUF adapter must
    track the change PEFT computes (a wrong q/k row permutation drops the correlation to ~0.3)."""
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hybridtune.train.base_model import prepare_base
    from hybridtune.train.gguf_lora import to_gguf

    folder, gguf = prepare_base(TrainConfig())
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    ids = tok("<|im_start|>user\nI keep worrying that I will fail.<|im_end|>\n<|im_start|>assistant\n",
              add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        base = model(torch.tensor([ids])).logits[0].numpy()
    torch.manual_seed(0)
    pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"]))
    for name, p in pm.named_parameters():
        if "lora_" in name:
            p.data.normal_(0, 0.1 if "lora_B" in name else 0.05)
    with torch.no_grad():
        tuned = pm(torch.tensor([ids])).logits[0].numpy()
    pm.save_pretrained(str(tmp_path))
    out = to_gguf(tmp_path, gguf, tmp_path / "adapter.gguf")

    def cpp_logits(lora):
        llm = Llama(model_path=str(gguf), logits_all=True, verbose=False, n_ctx=256, n_threads=1,
                    **({"lora_path": str(lora)} if lora else {}))
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])

    d_hf = (tuned - base).ravel()
    d_cpp = (cpp_logits(out) - cpp_logits(None)).ravel()
    assert np.corrcoef(d_hf, d_cpp)[0, 1] > 0.85
    assert 0.7 < np.linalg.norm(d_cpp) / np.linalg.norm(d_hf) < 1.4


def test_training_shows_one_bar_with_loss_and_eta_and_no_raw_log_dicts(tmp_path, monkeypatch):
    """The demo's training printed the trainer's dicts (learning_rate=0.00019135...) and no bar of its own."""
    import io

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hybridtune import noise
    from hybridtune.train.local import train_lora

    monkeypatch.setenv(noise.VERBOSE_ENV, "0")
    out = io.StringIO()
    lines: list[str] = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TextColumn("eta"), TimeRemainingColumn(),
                   console=Console(file=out, width=160, force_terminal=False))
    tc = TrainConfig(**TINY_TC)
    rows = [conv(i) for i in range(2)]
    with bar:
        train_lora(tc, rows, rows[:1], tmp_path, log=lines.append, progress=bar, label="train hybrid")
    [task] = bar.tasks
    assert task.description == "train hybrid" and task.completed == task.total == 2
    assert task.fields["rate"].startswith("loss ") and "eval " in task.fields["rate"]
    shown = out.getvalue()
    assert "train hybrid" in shown and "2/2" in shown and "loss " in shown and "eta" in shown
    assert not any("learning_rate=" in x or "{" in x for x in lines), lines
    assert "learning_rate" not in shown
