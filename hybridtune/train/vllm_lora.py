"""Serve trained LoRA adapters from a vLLM server (`vllm serve BASE --enable-lora`), by name.

Each adapter gets a name that changes with its data (`<variant>-<data hash>`), so a retrained
adapter never hides behind a stale one on the server or in the response cache. It is loaded
through vLLM's runtime endpoint `POST /v1/load_lora_adapter` (the server must run with
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`) unless the server already lists it (started with
`--lora-modules name=path`). `registry.counselor_llm` calls `ensure_adapter` again before a
variant is used, so a restarted server gets its adapters back.

    check_server(cfg, cfg.train)                      # the base model is served; before training
    ensure_adapter(endpoint, "vllm", "hybrid-1a2b3c4d", "/abs/runs/gpu/train/hybrid/adapter")
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from ..errors import UserError, server_message

_loaded: set[tuple[str, str]] = set()  # (url, name) known to be served, per process


def adapter_name(variant: str, data_hash: str | None) -> str:
    return f"{variant}-{(data_hash or 'nohash')[:8]}"


def _urls(ep) -> list[str]:
    if not ep.base_url:
        raise UserError("train.serve_endpoint: the endpoint has no base_url; point it at the vLLM server "
                        "(e.g. http://127.0.0.1:8000/v1)")
    return [u.rstrip("/") for u in ([ep.base_url] if isinstance(ep.base_url, str) else ep.base_url)]


def _headers(ep) -> dict:
    key = os.environ.get(ep.api_key_env) if ep.api_key_env else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def serve_command(ep, max_rank: int, adapters: dict[str, str] | None = None, max_loras: int = 4) -> str:
    """The vLLM line that serves the base and (optionally) named adapters from the start;
    `max_rank` is train.lora_r, `max_loras` how many adapters one batch may mix."""
    mods = " ".join(f"{n}={p}" for n, p in (adapters or {}).items())
    return (f"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve {ep.model} --enable-lora --max-lora-rank {max_rank} "
            f"--max-loras {max_loras}" + (f" --lora-modules {mods}" if mods else ""))


def served(ep, name: str, url: str, max_rank: int = 16) -> dict[str, dict]:
    try:
        r = httpx.get(f"{url}/models", headers=_headers(ep), timeout=30)
        r.raise_for_status()
    except httpx.HTTPError as e:
        raise UserError(f"endpoints.{name}.base_url: cannot list models at {url} ({type(e).__name__}); start "
                        f"vLLM first: {serve_command(ep, max_rank)}") from None
    return {m["id"]: m for m in r.json().get("data", [])}


def check_server(cfg, tc) -> None:
    """The serving endpoint exists, is OpenAI-compatible, is up and serves the base model."""
    name = tc.serve_endpoint
    ep = cfg.endpoints.get(name)
    if ep is None or ep.backend != "openai":
        raise UserError(f"train.serve_endpoint: '{name}' must name an endpoint with backend: openai (the vLLM server)")
    for url in _urls(ep):
        models = served(ep, name, url, tc.lora_r)
        if ep.model not in models:
            raise UserError(f"endpoints.{name}: {url} serves {', '.join(models) or 'nothing'}, not {ep.model}; "
                            f"start it with: {serve_command(ep, tc.lora_r)}")
        check_runtime_lora(ep, name, url, tc.lora_r)


PROBE = "hybridtune-probe-not-an-adapter"


def adapter_rank(path: str) -> int:
    """The LoRA rank in a PEFT adapter folder (what --max-lora-rank must reach; 16 if unreadable)."""
    try:
        return int(json.loads((Path(path) / "adapter_config.json").read_text())["r"])
    except (OSError, KeyError, ValueError, TypeError):
        return 16


def check_runtime_lora(ep, name: str, url: str, max_rank: int) -> None:
    """The server loads adapters at runtime: unloading a name it never had answers vLLM's
    "The lora adapter ... cannot be found" only when VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
    registered the route; without it the route does not exist (a bare 404 "Not Found")."""
    try:
        r = httpx.post(f"{url}/unload_lora_adapter", json={"lora_name": PROBE}, headers=_headers(ep), timeout=30)
    except httpx.HTTPError as e:
        raise UserError(f"endpoints.{name}.base_url: cannot reach {url} ({type(e).__name__}); start vLLM first: "
                        f"{serve_command(ep, max_rank)}") from None
    if r.status_code == 200 or "adapter" not in r.text.lower():
        raise UserError(f"endpoints.{name}: {url} cannot load LoRA adapters at runtime (POST /unload_lora_adapter: "
                        f"HTTP {r.status_code}); restart it as: {serve_command(ep, max_rank)}")


def refusal(r: httpx.Response) -> str:
    """vLLM's error message (its JSON `error.message`, else the body) on one line."""
    try:
        body = r.json()
    except ValueError:
        body = None
    return server_message(body, r.text)


def check_same_adapter(card: dict, ep_name: str, url: str, name: str, path: str) -> None:
    """A name the server already lists must be this adapter: vLLM keeps the first path loaded under a
    name and refuses another, so the first adapter would silently answer for the second."""
    root = card.get("root")
    if root and Path(root).resolve() != Path(path).resolve():
        raise UserError(f"endpoints.{ep_name}: {url} already serves adapter {name} from {root}, not {path}; "
                        f"unload it (POST {url}/unload_lora_adapter {{\"lora_name\": \"{name}\"}}) or restart vLLM")


def ensure_adapter(ep, ep_name: str, name: str, path: str) -> None:
    """Make every replica of the endpoint serve the adapter at `path` as model `name`."""
    for url in _urls(ep):
        if (url, name) in _loaded:
            continue
        cards = served(ep, ep_name, url)
        if name in cards:
            check_same_adapter(cards[name], ep_name, url, name, path)
        else:
            r = httpx.post(f"{url}/load_lora_adapter", json={"lora_name": name, "lora_path": path},
                           headers=_headers(ep), timeout=300)
            if r.status_code == 404 and "adapter" not in r.text.lower():
                raise UserError(f"endpoints.{ep_name}: {url} does not load adapters at runtime; restart vLLM with "
                                f"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or serve them from the start: "
                                f"{serve_command(ep, adapter_rank(path), {name: path})}")
            if r.status_code != 200 and "already been loaded" not in r.text:
                raise UserError(f"endpoints.{ep_name}: vLLM refused adapter {name} ({path}): HTTP {r.status_code} "
                                f"{refusal(r)}; the server must see this path and run with --enable-lora and "
                                "--max-lora-rank >= train.lora_r")
        _loaded.add((url, name))
