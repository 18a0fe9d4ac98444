"""Multi-GPU / multi-node entry point for one local variant, run under `accelerate launch`.

Every rank reads the same validated data and trains (TRL/accelerate handle DDP, DeepSpeed
ZeRO or FSDP from the accelerate config); only the main process writes the registry entry
(and, for a GGUF base, the llama.cpp adapter). `hybridtune train` is the single-process
equivalent; both write `runs/<name>/train/<variant>/` and `models.json` the same way.

    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml \\
        -m hybridtune.train.launch -c configs/vllm.yaml --variant hybrid

No GPU is available on the development machine, so this path is documented, not tested here.
"""
from __future__ import annotations

import argparse

from ..config import load_config
from ..domain import load_domain
from ..records import ModelEntry
from ..registry import save_entry
from ..store import RunStore
from .data import data_hash, load_split
from .local import train_lora
from .stage import hyperparameters, local_entry


def main(argv: list[str] | None = None) -> None:
    from accelerate import PartialState

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True, help="experiment YAML")
    ap.add_argument("--variant", required=True, help="variant to train (reads mix/<variant>/)")
    ap.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    a = ap.parse_args(argv)
    state = PartialState()
    cfg = load_config(a.config)
    tc = cfg.train
    sp = (cfg.system_prompt or load_domain(cfg.domain).system_prompt).strip()
    folder = cfg.run_dir / "mix" / a.variant
    train, _ = load_split(folder / "train.jsonl", sp if tc.add_system_prompt else None)
    valid = load_split(folder / "valid.jsonl", sp if tc.add_system_prompt else None)[0] if (folder / "valid.jsonl").exists() else []
    out = cfg.run_dir / "train" / a.variant
    out.mkdir(parents=True, exist_ok=True)
    metrics = train_lora(tc, train, valid, out, resume=not a.no_resume)
    if state.is_main_process:
        common = {"variant": a.variant, "data_hash": data_hash(train, valid), "hyperparameters": hyperparameters(tc),
                  "system_prompt": sp, "metrics": {"train_sessions": len(train), "valid_sessions": len(valid),
                                                   **metrics, "processes": state.num_processes}}
        entry: ModelEntry = local_entry(tc, out, common)
        save_entry(RunStore(cfg.run_dir), entry)


if __name__ == "__main__":
    main()
