"""Stage `train`: build every counselor variant and register it in `runs/<name>/models.json`.

Input, for each trained variant declared under `variants:` (an untrained one, `sources: []`
such as `base`, needs no data): local, `mix/<variant>/train.jsonl` and `valid.jsonl` (Session
records); openai, the validated export `mix/<variant>/openai_train.jsonl` /
`openai_valid.jsonl`, uploaded byte for byte. Output: one `ModelEntry` per variant (backend,
model, adapter, data hash, hyperparameters, system prompt, metrics) and, per trained variant,
`train/<variant>/` with checkpoints, the PEFT adapter, `adapter.gguf`, loss curves (local) or
the job record and metrics (openai).

Local training runs in this process, or under one `accelerate launch` for all variants across
the GPUs it finds (`train.launcher`, `train.accelerate_config`, `train.num_processes`; the
launch line is built by `train/launch.py`). With `train.serve_endpoint` (vLLM `--enable-lora`)
every adapter is loaded into that server under its own name (`train/vllm_lora.py`) and the
variants, untrained ones included, are registered as that server's model names.

Every check that can fail (CUDA for a `train.device: cuda` config, data format, unknown
model, QLoRA without GPU, memory, API key) runs for all variants before any training (and
most of them already before the run's first stage: preflight.check_before_run). A trained
adapter is loaded with PEFT (`local.verify_adapter`) before its variant is registered.
Variants share base model, system prompt, hyperparameters and seed; only the training set
differs. With `train.seeds`, each trained variant is trained once per seed: `variant~s<seed>`
(hybridtune/variants.py `with_seeds`) trains with that seed on subsets mix drew with it. A
variant whose registry entry already matches its data hash and hyperparameters is skipped; a killed run resumes from
its last checkpoint (local) or keeps following its job (openai). Two variants whose sets are
identical (e.g. `hybrid` and `hybrid@0.5`) share one fine-tuned model.

    hybridtune train -c configs/demo.yaml                # all variants
    hybridtune train -c configs/demo.yaml --variant hybrid --no-resume
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..context import Context
from ..errors import UserError
from ..records import ModelEntry
from ..registry import load_registry, save_entry
from ..store import StageDir
from .backends import backend_of
from .config import TrainConfig, model_tc
from .data import data_hash, load_split


def variant_hp(ctx: Context, name: str) -> dict:
    return hyperparameters(model_tc(ctx.cfg.train, ctx.cfg.variant(name)))


def hyperparameters(tc: TrainConfig) -> dict:
    return backend_of(tc).hyperparameters(tc)


def export_files(ctx: Context, variant: str) -> dict[str, Path | None]:
    """The mix stage's validated OpenAI export of one variant (what a hosted job trains on)."""
    folder = ctx.store.path("mix", variant)
    train, valid = folder / "openai_train.jsonl", folder / "openai_valid.jsonl"
    if not train.is_file():
        raise UserError(f"{train}: the validated export is missing; run the mix stage "
                        f"(hybridtune run CONFIG --stage mix) or `hybridtune export -c CONFIG`")
    return {"train": train, "valid": valid if valid.is_file() and valid.stat().st_size else None}


def load_splits(ctx: Context, st: StageDir, variant: str) -> tuple[list, list, str]:
    """Validated train/valid Session splits of one variant (bad lines quarantined) and their hash."""
    sp = ctx.system_prompt if ctx.cfg.train.add_system_prompt else None
    folder = ctx.store.path("mix", variant)
    train, bad = load_split(folder / "train.jsonl", sp)
    valid, bad_v = load_split(folder / "valid.jsonl", sp) if (folder / "valid.jsonl").exists() else ([], [])
    if bad or bad_v:
        st.append_many("quarantine.jsonl", [*bad, *bad_v])
        ctx.log(f"[yellow]{variant}: {len(bad) + len(bad_v)} unusable lines quarantined "
                f"(see {st.file('quarantine.jsonl')})[/yellow]")
    return train, valid, data_hash(train, valid)


def base_entry(ctx: Context, name: str = "base") -> ModelEntry:
    """An untrained variant: the base model under the shared system prompt."""
    tc = ctx.cfg.train
    common = {"variant": name, "hyperparameters": hyperparameters(tc), "system_prompt": ctx.system_prompt,
              "recipe": ctx.cfg.variant(name).recipe()}
    return backend_of(tc).base_entry(ctx, tc, common)



def preflight(ctx: Context, names: list[str]) -> dict[str, tuple]:
    """All data and model checks before any training (one clear error, nothing spent)."""
    from .hardware import check_device

    tc = ctx.cfg.train
    backend = backend_of(tc)
    check_device(tc)  # a no-op for backends without GPU checks
    st = ctx.store.stage("train")
    data = {v: backend.load_data(ctx, st, v) for v in names if ctx.cfg.variant(v).trained}
    backend.preflight(ctx, tc, data)
    return data


def is_current(entry: ModelEntry | None, h: str, hp: dict) -> bool:
    """A registered variant that needs no retraining."""
    if entry is None or entry.data_hash != h or entry.hyperparameters != hp:
        return False
    return entry.adapter is None or Path(entry.adapter).exists()


def prepare_dir(ctx: Context, st: StageDir, variant: str, h: str, resume: bool) -> Path:
    """train/<variant>/ with spec.json; checkpoints of other data or settings are dropped."""
    out = st.path / variant
    out.mkdir(parents=True, exist_ok=True)
    spec = {"data_hash": h, "hyperparameters": variant_hp(ctx, variant)}
    if not resume or st.read_json(f"{variant}/spec.json") != spec:  # checkpoints of other data are useless
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    st.write_json(f"{variant}/spec.json", spec)
    return out


def train_variant(ctx: Context, st: StageDir, variant: str, rows: tuple, resume: bool,
                  launched: dict | None = None) -> ModelEntry:
    """Train (or follow the job of) one variant and return its registry entry; `launched`:
    the metrics of a local variant already trained under `accelerate launch`."""
    tc = model_tc(ctx.cfg.train, ctx.cfg.variant(variant))
    train, valid, h = rows
    hp = hyperparameters(tc)
    out = prepare_dir(ctx, st, variant, h, resume) if launched is None else st.path / variant
    common = {"variant": variant, "data_hash": h, "hyperparameters": hp, "system_prompt": ctx.system_prompt,
              "recipe": ctx.cfg.variant(variant).recipe()}
    common["metrics"] = {"train_sessions": len(train), "valid_sessions": len(valid)}
    return backend_of(tc).train(ctx, st, variant, tc, rows, out, common, launched, resume)



def run(ctx: Context, st: StageDir, *, variants: list[str] | None = None, resume: bool = True) -> dict:
    """Every declared variant (or those named), in declared order."""
    names = [ctx.cfg.variant(v).name for v in variants] if variants else [v.name for v in ctx.cfg.variant_list()]
    data = preflight(ctx, names)
    reg = load_registry(ctx.store)
    built, skipped = [], []
    hps = {v: variant_hp(ctx, v) for v in names}
    todo: dict[str, str] = {}  # to train: not registered as current, and no identical set before it
    for v in (v for v in names if v in data and not is_current(reg.get(v), data[v][2], hps[v])):
        if not any(is_current(e, data[v][2], hps[v]) for e in reg.values()) and all(
                (data[t][2], hps[t]) != (data[v][2], hps[v]) for t in todo):
            todo[v] = data[v][2]
    launched: dict[str, dict] = {}
    backend = backend_of(ctx.cfg.train)
    if todo and backend.together(ctx.cfg.train):
        for v, h in todo.items():
            prepare_dir(ctx, st, v, h, resume)
        launched = backend.launch(ctx, list(todo), resume)
    for v in names:
        if v not in data:
            save_entry(ctx.store, base_entry(ctx, v))
            continue
        hp = hps[v]
        same = next((e for e in reg.values() if e.variant != v and is_current(e, data[v][2], hp)), None)
        if is_current(reg.get(v), data[v][2], hp) or same is not None:
            if same is not None and not is_current(reg.get(v), data[v][2], hp):  # identical set: share its model
                save_entry(ctx.store, same.model_copy(update={"variant": v, "recipe": ctx.cfg.variant(v).recipe()}))
            skipped.append(v)
            ctx.log(f"[dim]{v}: already trained on the same data and settings, skipped[/dim]")
            continue
        save_entry(ctx.store, train_variant(ctx, st, v, data[v], resume, launched.get(v)))
        reg = load_registry(ctx.store)
        built.append(v)
    reg = load_registry(ctx.store)
    st.write_json("models.json", {k: v.model_dump(mode="json") for k, v in reg.items()})  # snapshot beside outputs
    losses = [f"{v} {reg[v].metrics['train_loss']}" for v in built if "train_loss" in reg[v].metrics]
    return {"variants": names, "trained": built, "skipped": skipped, "train_loss": losses,
            "metrics": {v: reg[v].metrics for v in names if v in reg}}


def describe(ctx: Context) -> str:
    return json.dumps({k: v.model_dump(mode="json") for k, v in load_registry(ctx.store).items()}, indent=2)
