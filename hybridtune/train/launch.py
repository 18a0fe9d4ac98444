"""Multi-GPU training of one local variant under `accelerate launch`: the launch line and its entry point.

The `train` stage builds the line itself (`launch_command`) and runs it when
`train.launcher` is `accelerate` (or `auto` and a CUDA GPU is present): one process per
visible GPU (`train.num_processes: auto`) with the shipped accelerate config named by
`train.accelerate_config` (ddp, deepspeed_zero2, deepspeed_zero3, fsdp under
configs/accelerate/, or a path). Every rank reads the same validated data and trains
(TRL/accelerate handle DDP, DeepSpeed ZeRO or FSDP); the main process writes the adapter
and `train/<variant>/metrics.json`, which the stage turns into the registry entry. One
launch trains every variant that needs it, one after the other, so the processes start
(and the GPUs join) once per stage. The line always names a config file (ddp.yaml for
plain DDP), so no default accelerate config of the user's applies; `--mixed_precision` is
bf16 where every GPU has it, else fp16; `train.gpus` becomes the launch's
CUDA_VISIBLE_DEVICES (`launch_env`). With `train.device: cpu` several processes join over
gloo (torchrun; `main` sets ACCELERATE_USE_CPU before the process group exists).

    launch_command(cfg.train, Path("runs/x/config.yaml"), ["real", "hybrid"], gpus=4)
    # [python, -m, accelerate.commands.launch, --config_file, .../configs/accelerate/ddp.yaml,
    #  --num_machines, 1, --num_processes, 4, ..., --main_process_port, N,
    #  -m, hybridtune.train.launch, -c, runs/x/config.yaml, --variant, real, --variant, hybrid]

The entry point (what each rank runs; by hand only for multi-node, see docs/training.md):

    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml \\
        -m hybridtune.train.launch -c runs/gpu/config.yaml --variant real --variant hybrid
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from .config import TrainConfig
from .hardware import INSTALL, bf16_supported, training_gpus

if TYPE_CHECKING:
    from ..context import Context

SHIPPED = ("ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp")


def use_accelerate(tc: TrainConfig) -> bool:
    return tc.launcher == "accelerate" or (tc.launcher == "auto" and training_gpus(tc) > 0)


def accelerate_config_file(name: str) -> Path:
    """The accelerate YAML for `train.accelerate_config`: always a file, so that no default
    accelerate config of the user's (~/.cache/huggingface/accelerate) changes the launch."""
    if name in SHIPPED:
        for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
            p = root / "configs" / "accelerate" / f"{name}.yaml"
            if p.is_file():
                return p
        raise UserError(f"train.accelerate_config: {name}.yaml not found under configs/accelerate/; run from the "
                        "project folder or give the config's path")
    p = Path(name).expanduser()
    if not p.is_file():
        raise UserError(f"train.accelerate_config: '{name}' is neither one of {', '.join(SHIPPED)} nor a file")
    return p


def processes(tc: TrainConfig, gpus: int) -> int:
    n = max(gpus, 1) if tc.num_processes == "auto" else tc.num_processes
    if gpus == 0 and n > 1 and tc.device != "cpu":  # several CPU processes (gloo) only when asked for
        raise UserError(f"train.num_processes: {n} processes need {n} GPUs and this machine has none; "
                        "set train.num_processes=1 (or auto), or train.device=cpu for CPU processes")
    if gpus and n > gpus:
        raise UserError(f"train.num_processes: {n} processes but {gpus} visible GPU(s); lower it or use auto")
    return n


def check_launch(tc: TrainConfig, gpus: int | None = None) -> None:
    """Everything the launch needs, before any training (one clear error)."""
    gpus = training_gpus(tc) if gpus is None else gpus
    processes(tc, gpus)
    cfg_file = accelerate_config_file(tc.accelerate_config)
    if "DEEPSPEED" in cfg_file.read_text() and importlib.util.find_spec("deepspeed") is None:
        raise UserError(f"train.accelerate_config: {cfg_file.name} needs DeepSpeed, which is not installed; "
                        f"`{INSTALL}` installs it (pinned in constraints-gpu.txt), or use ddp or fsdp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def precision(gpus: int) -> str:
    """--mixed_precision: bf16 where every GPU computes in it, fp16 on older GPUs, none on the CPU."""
    return "no" if gpus == 0 else "bf16" if bf16_supported() else "fp16"


def launch_command(tc: TrainConfig, config_path: Path, variants: list[str], *, gpus: int, resume: bool = True,
                   python: str = sys.executable) -> list[str]:
    """The `accelerate launch` line of some variants (the same interpreter, so the same environment)."""
    n = processes(tc, gpus)
    # the shipped (or named) config gives the strategy; the process count and precision are this machine's
    cmd = [python, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config_file(tc.accelerate_config)),
           "--num_machines", "1", "--num_processes", str(n), "--dynamo_backend", "no",
           "--mixed_precision", precision(gpus)]
    if n > 1:  # a port of its own: another run (or test) on this machine may hold accelerate's default 29500
        cmd += ["--main_process_port", str(free_port())]
    if gpus == 0 and n == 1:
        cmd += ["--cpu"]  # one plain process; several CPU processes (train.device: cpu) go through torchrun
        # like GPUs, and each rank joins over gloo (main() sets ACCELERATE_USE_CPU before the process group)
    cmd += ["-m", "hybridtune.train.launch", "-c", str(config_path)]
    cmd += [x for v in variants for x in ("--variant", v)]
    return cmd + ([] if resume else ["--no-resume"])


def launch_env(tc: TrainConfig) -> dict[str, str]:
    """The launch's environment: `train.gpus` as CUDA_VISIBLE_DEVICES (the ranks see only those)."""
    env = dict(os.environ)
    if tc.gpus and training_gpus(tc):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible_ids(tc.gpus))
    return env


def visible_ids(gpus: str) -> list[str]:
    """`train.gpus` counts GPUs as this process sees them; under an outer CUDA_VISIBLE_DEVICES the
    launch must name the same cards by their ids there."""
    outer = [x for x in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()]
    return [outer[int(i)] if outer and int(i) < len(outer) else i for i in gpus.split(",")]


def run_launch(ctx: Context, variants: list[str], *, resume: bool = True) -> dict[str, dict]:
    """Run the launch line, its output through the stage log; {variant: the trainer's metrics}."""
    config_path = ctx.store.path("config.yaml")  # the resolved config (overrides included), written by open_run
    cmd = launch_command(ctx.cfg.train, config_path, variants, gpus=training_gpus(ctx.cfg.train), resume=resume)
    env = launch_env(ctx.cfg.train)
    placed = f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} " if ctx.cfg.train.gpus and "CUDA_VISIBLE_DEVICES" in env else ""
    ctx.log(f"train: {placed}{' '.join(cmd[1:])}")
    files = {v: ctx.store.path("train", v, "metrics.json") for v in variants}
    for f in files.values():
        f.unlink(missing_ok=True)
    tail: deque[str] = deque(maxlen=30)
    said: list[str] = []  # a rank's UserError; torchrun's report of the failure can bury it far above the tail
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as proc:
        for line in proc.stdout:
            tail.append(line.rstrip())
            if line.startswith("error: "):
                said.append(line.rstrip().removeprefix("error: "))
            ctx.log(f"[dim]{line.rstrip()}[/dim]")
    missing = [v for v, f in files.items() if not f.is_file()]
    if said:  # a rank stopped on a UserError: that one line is the message
        raise UserError(said[-1])
    if proc.returncode != 0 or missing:
        raise UserError(f"train: `accelerate launch` exited with {proc.returncode} before finishing "
                        f"{', '.join(missing)}; rerun to resume from the last checkpoints. Last lines:\n"
                        + "\n".join(tail))
    return {v: json.loads(f.read_text()) for v, f in files.items()}


def main(argv: list[str] | None = None) -> None:
    from accelerate import PartialState

    from ..config import load_config
    from ..domain import load_domain
    from ..store import atomic_write
    from .data import data_hash, load_split
    from .config import model_tc
    from .local import train_lora

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True, help="experiment YAML (the run's resolved runs/<name>/config.yaml)")
    ap.add_argument("--variant", required=True, action="append", help="variant to train (reads mix/<variant>/); repeatable")
    ap.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    tc = cfg.train.model_copy(update={"gpus": None})  # the launch's CUDA_VISIBLE_DEVICES already holds train.gpus
    cpu = training_gpus(tc) == 0
    if cpu:  # the Trainer's own accelerator state must agree: gloo, no CUDA
        os.environ["ACCELERATE_USE_CPU"] = "true"
    state = PartialState(cpu=cpu)
    sp = (cfg.system_prompt or load_domain(cfg.domain).system_prompt).strip() if tc.add_system_prompt else None
    for variant in a.variant:
        folder = cfg.run_dir / "mix" / variant
        train, _ = load_split(folder / "train.jsonl", sp)
        valid = load_split(folder / "valid.jsonl", sp)[0] if (folder / "valid.jsonl").exists() else []
        out = cfg.run_dir / "train" / variant
        out.mkdir(parents=True, exist_ok=True)
        metrics = train_lora(model_tc(tc, cfg.variant(variant)), train, valid, out, resume=not a.no_resume)
        if state.is_main_process:
            metrics.update(processes=state.num_processes, data_hash=data_hash(train, valid))
            atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        state.wait_for_everyone()  # the next variant starts together on every rank


if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # one line for the stage to pass on, no traceback
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
