"""What this machine offers for local training (CUDA, GPUs, free memory, library versions), and
the device check that runs before anything else.

`check_device(tc)` is the first check of `run --dry-run`, of `run` (before any stage) and of the
train stage: a config with `train.device: cuda` (configs/gpu.yaml, configs/gpu-1x.yaml) on a
machine without a CUDA GPU is refused in seconds, in one line naming CUDA and the install
command (`make setup-gpu`). `train.device: cpu` trains on the CPU even where a GPU is.
`hybridtune doctor` prints what `probe()` finds.

    check_device(cfg.train)        # UserError when the config needs CUDA and this machine has none
    hw = probe()                   # Hardware(torch=..., cuda=..., gpus=[Gpu(...)], versions={...})
    print("\\n".join(hw.lines()))
    hybridtune doctor
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from pydantic import BaseModel

from ..errors import UserError
from .config import TrainConfig

INSTALL = "make setup-gpu"
VLLM_ENV = ".venv-vllm"  # where `make setup-gpu` installs vLLM (Makefile VLLM_VENV)
STACK = ("torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "bitsandbytes", "vllm")


class Gpu(BaseModel):
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    bf16: bool


class Hardware(BaseModel):
    torch: str
    cuda: str | None  # the CUDA version torch was built with (None: a CPU-only build)
    gpus: list[Gpu]
    versions: dict[str, str | None]  # None: not installed

    def lines(self) -> list[str]:
        out = [f"torch {self.torch}: " + (f"CUDA {self.cuda} build" if self.cuda else
                                          f"CPU-only build (no CUDA); `{INSTALL}` installs the CUDA stack")]
        if self.cuda and not self.gpus:
            out.append("GPUs: none visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
        for g in self.gpus:
            out.append(f"GPU {g.index}: {g.name}, {g.free_bytes / 2**30:.1f} of {g.total_bytes / 2**30:.1f} GiB free, "
                       f"bf16 {'yes' if g.bf16 else 'no (fp16 is used)'}")
        out.append("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in self.versions.items()))
        return out


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def probe() -> Hardware:
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(Gpu(index=i, name=torch.cuda.get_device_name(i), total_bytes=total, free_bytes=free,
                            bf16=torch.cuda.get_device_capability(i) >= (8, 0)))
    versions = {d: version(d) for d in STACK}
    if versions["vllm"] is None:  # `make setup-gpu` puts vLLM in an environment of its own
        versions["vllm"] = vllm_env_version()
    return Hardware(torch=torch.__version__, cuda=torch.version.cuda, gpus=gpus, versions=versions)


def vllm_env_version(env: Path = Path(VLLM_ENV)) -> str | None:
    """vLLM's version in its own environment, read from its dist-info folder name (no import)."""
    found = sorted(env.glob("lib/python*/site-packages/vllm-*.dist-info"))
    return f"{found[-1].name.removeprefix('vllm-').removesuffix('.dist-info')} (in {env})" if found else None


def cuda_gpus() -> int:
    """CUDA GPUs this process can use (0 without a CUDA build or a visible GPU)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_indices(tc: TrainConfig) -> list[int]:
    """The visible GPUs training uses: `train.gpus`, or all of them; none with `train.device: cpu`."""
    if tc.device == "cpu":
        return []
    n = cuda_gpus()
    return [int(i) for i in tc.gpus.split(",") if int(i) < n] if tc.gpus else list(range(n))


def training_gpus(tc: TrainConfig) -> int:
    """How many GPUs training uses: none with `train.device: cpu`."""
    return len(gpu_indices(tc))


def bf16_supported() -> bool:
    """Every visible GPU computes in bf16 (Ampere or newer); False on the CPU."""
    import torch

    return cuda_gpus() > 0 and all(torch.cuda.get_device_capability(i) >= (8, 0) for i in range(cuda_gpus()))


def free_gpu_bytes(indices: list[int]) -> int:
    """Free memory of the fullest of these GPUs (what a training process there can still take)."""
    import torch

    return min(torch.cuda.mem_get_info(i)[0] for i in indices or [0])


def check_device(tc: TrainConfig) -> None:
    """Refuse, in one line, a config that trains on CUDA where there is none."""
    from .backends import backend_of

    if not backend_of(tc).gpu or tc.device == "cpu":
        return
    n = cuda_gpus()
    missing = [i for i in (tc.gpus or "").split(",") if i and int(i) >= n]
    if n and missing:
        raise UserError(f"train.gpus: GPU {', '.join(missing)} is not visible here ({n} GPU(s): 0-{n - 1}); "
                        "name GPUs that `hybridtune doctor` lists")
    if tc.device != "cuda" or n > 0:
        return
    import torch

    why = (f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
           else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU; check nvidia-smi and "
                "CUDA_VISIBLE_DEVICES")
    raise UserError(f"train.device: cuda, but this machine has no CUDA GPU ({why}); install the GPU stack with "
                    f"`{INSTALL}` on a machine with NVIDIA GPUs, or set train.device=cpu to train this config on "
                    "the CPU (slow)")
