"""Model registry `runs/<name>/models.json`: counselor variant -> how to call and reproduce it.

Written by the train stage (the `base` variant is registered too), read by evaluation,
chat and serve. `counselor_llm` turns an entry into an `LLM` through the same layer every
stage uses, so a fine-tuned local model runs in llama.cpp at embedded speed, and a LoRA
adapter served by vLLM is called by its name there (loaded again if the server restarted).

    reg = load_registry(store)              # {"base": ModelEntry, "real": ..., "hybrid": ...}
    llm = counselor_llm(ctx, reg["hybrid"])

A registry of trained models, not a `plugins.Registry` (those are the named extension points:
formats, backends, metrics).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .errors import UserError
from .records import ModelEntry
from .store import RunStore, atomic_write

if TYPE_CHECKING:
    from .context import Context
    from .llm import LLM


def registry_path(store: RunStore):
    return store.path("models.json")


def load_registry(store: RunStore) -> dict[str, ModelEntry]:
    p = registry_path(store)
    if not p.exists():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {k: ModelEntry.model_validate(v) for k, v in data.items()}


def save_entry(store: RunStore, entry: ModelEntry) -> None:
    """Add or replace one variant (read-modify-write under the run lock)."""
    reg = load_registry(store)
    reg[entry.variant] = entry
    atomic_write(registry_path(store), json.dumps({k: v.model_dump(mode="json") for k, v in reg.items()}, indent=2) + "\n")


def declared_entries(ctx: Context, strict: bool = True) -> dict[str, ModelEntry]:
    """The declared variants (config `variants:`, in order) as registered; `strict`: every one must be."""
    reg = load_registry(ctx.store)
    names = [v.name for v in ctx.cfg.variant_list()]
    missing = [n for n in names if n not in reg]
    if strict and (missing or not reg):
        raise UserError(f"{registry_path(ctx.store)}: variants {missing} are declared but not registered "
                        f"(registered: {list(reg) or 'none'}); run `hybridtune train` first")
    return {n: reg[n] for n in names if n in reg}


def counselor_llm(ctx: Context, entry: ModelEntry) -> LLM:
    """The counselor role bound to a registered variant."""
    rc = ctx.cfg.roles["counselor"]
    if entry.backend == "llamacpp":
        base_ep = ctx.cfg.endpoints[rc.endpoint]
        ep = base_ep.model_copy(update={"backend": "llamacpp", "model": entry.model, "lora_path": entry.adapter})
        # the request's model name keys the response cache: an adapter variant must not share the base's key
        name = f"{entry.model}+{entry.variant}@{entry.data_hash}" if entry.adapter else None
        return ctx.llms.bind("counselor", rc.model_copy(update={"model": name}), f"variant:{entry.variant}", ep)
    if entry.backend == "openai":
        name = entry.endpoint or rc.endpoint
        if name not in ctx.cfg.endpoints:
            raise UserError(f"models.json: variant {entry.variant} names endpoint '{name}', which the config lacks")
        if entry.adapter:  # a LoRA on a vLLM server: load it again if the server was restarted since training
            from .train.vllm_lora import ensure_adapter

            ensure_adapter(ctx.cfg.endpoints[name], name, entry.model, entry.adapter)
        return ctx.llms.bind("counselor", rc.model_copy(update={"model": entry.model}), name)
    if entry.backend == "fake":  # tests
        return ctx.llms.bind("counselor", rc, rc.endpoint)
    raise UserError(f"models.json: variant {entry.variant}: unknown backend '{entry.backend}'")
