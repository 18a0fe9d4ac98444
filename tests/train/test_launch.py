"""The `accelerate launch` line the train stage builds (its CPU run is in tests/test_real_runs.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from hybridtune.errors import UserError
from hybridtune.train.config import TrainConfig
from hybridtune.train.launch import check_launch, launch_command

CFG = Path("runs/x/config.yaml")
TAIL = ["-m", "hybridtune.train.launch", "-c", str(CFG), "--variant", "real", "--variant", "hybrid"]


def test_cpu_line_is_one_process_without_mixed_precision():
    cmd = launch_command(TrainConfig(), CFG, ["real", "hybrid"], gpus=0)
    ddp = str(Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "ddp.yaml")
    assert cmd == [sys.executable, "-m", "accelerate.commands.launch", "--config_file", ddp, "--num_machines", "1",
                   "--num_processes", "1", "--dynamo_backend", "no", "--mixed_precision", "no", "--cpu", *TAIL]


def test_gpu_lines_use_every_gpu_and_the_shipped_configs(monkeypatch):
    import hybridtune.train.launch as launch

    monkeypatch.setattr(launch, "bf16_supported", lambda: True)
    ddp = launch_command(TrainConfig(), CFG, ["real", "hybrid"], gpus=4, resume=False)
    assert ddp[ddp.index("--num_processes") + 1] == "4" and ddp[-1] == "--no-resume"
    assert Path(ddp[ddp.index("--config_file") + 1]).name == "ddp.yaml"  # distributed_type MULTI_GPU
    assert ddp[ddp.index("--mixed_precision") + 1] == "bf16"
    z3 = launch_command(TrainConfig(accelerate_config="deepspeed_zero3", num_processes=2), CFG, ["real"], gpus=8)
    cfg_file = Path(z3[z3.index("--config_file") + 1])
    assert cfg_file.name == "deepspeed_zero3.yaml" and cfg_file.is_file() and z3[z3.index("--num_processes") + 1] == "2"
    one = launch_command(TrainConfig(), CFG, ["real"], gpus=1)
    assert one[one.index("--num_processes") + 1] == "1"


def test_impossible_launches_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="need 2 GPUs and this machine has none"):
        launch_command(TrainConfig(num_processes=2), CFG, ["real"], gpus=0)
    with pytest.raises(UserError, match="8 processes but 4 visible GPU"):
        check_launch(TrainConfig(num_processes=8), gpus=4)
    with pytest.raises(UserError, match="neither one of ddp"):
        check_launch(TrainConfig(accelerate_config=str(tmp_path / "none.yaml")), gpus=1)
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(UserError, match="needs DeepSpeed, which is not installed; `make setup-gpu` installs it"):
            check_launch(TrainConfig(accelerate_config="deepspeed_zero2"), gpus=2)
