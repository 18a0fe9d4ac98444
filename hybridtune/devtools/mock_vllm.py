"""Mock of vLLM's LoRA serving API for `mock_openai --vllm` (tests of the GPU path on a CPU box).

Like `vllm serve BASE --enable-lora [--lora-modules name=path ...]`:
- `/v1/models` lists the base model and every loaded adapter (`root` = adapter path,
  `parent` = base), the way vLLM's model cards do;
- `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` exists only when runtime updating
  is allowed (vLLM: `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`), answers plain text on success,
  400 for a name already loaded or an adapter whose rank exceeds `--max-lora-rank`, 404 for
  a path without `adapter_config.json`; `POST /v1/unload_lora_adapter {"lora_name"}`;
- a chat request for a model name that is neither the base nor a loaded adapter is a 404
  `NotFoundError` ("The model `x` does not exist."), as vLLM answers;
- `usage.prompt_tokens` counts the prompt rendered through a ChatML-like template (words as
  tokens; `add_generation_prompt` honoured), and `prompt_logprobs: 0` returns vLLM's list (None
  for the first token, then one `{token_id: {logprob, rank, decoded_token}}` per token), with
  log-probabilities that depend on the model name, so each adapter scores differently.

    routes = vllm_routes(state)      # state: mock_openai.MockState (adapters: name -> path)
"""
from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def vllm_error(status: int, message: str, type_: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": status}},
                        status_code=status)


def model_cards(state) -> list[dict]:
    now = int(time.time())
    base = {"id": state.cfg.served_model, "object": "model", "created": now, "owned_by": "vllm",
            "root": state.cfg.served_model, "parent": None, "max_model_len": 32768}
    return [base, *({"id": n, "object": "model", "created": now, "owned_by": "vllm", "root": p,
                     "parent": state.cfg.served_model, "max_model_len": 32768} for n, p in state.adapters.items())]


def render(messages: list[dict], add_generation_prompt: bool = True) -> list[str]:
    """The prompt's tokens: each message as <|im_start|> role words... <|im_end|>."""
    toks: list[str] = []
    for m in messages:
        toks += ["<|im_start|>", str(m.get("role")), *str(m.get("content") or "").split(), "<|im_end|>"]
    return toks + (["<|im_start|>", "assistant"] if add_generation_prompt else [])


def prompt_logprobs(model: str, toks: list[str]) -> list[dict | None]:
    def lp(t: str) -> float:
        return -0.01 - (zlib.crc32(f"{model}\0{t}".encode()) % 1000) / 250

    return [None] + [{str(zlib.crc32(t.encode()) % 150000): {"logprob": lp(t), "rank": 1, "decoded_token": t}}
                     for t in toks[1:]]


def check_adapter(path: str, max_rank: int) -> Response | None:
    """vLLM's refusal of an adapter folder, or None when it would load."""
    cfg = Path(path) / "adapter_config.json"
    if not cfg.is_file():
        return vllm_error(404, f"No adapter found for {path}", "NotFoundError")
    r = int(json.loads(cfg.read_text()).get("r", 0))
    if r > max_rank:
        return vllm_error(400, f"LoRA rank {r} is greater than max_lora_rank {max_rank}.", "BadRequestError")
    return None


def vllm_routes(state) -> list[Route]:
    async def load(request: Request) -> Response:
        body = await request.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return vllm_error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if name in state.adapters:
            return vllm_error(400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput")
        refused = check_adapter(path, state.cfg.max_lora_rank)
        if refused is not None:
            return refused
        state.adapters[name] = path
        state.stats["lora_loads"] += 1
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    async def unload(request: Request) -> Response:
        name = (await request.json()).get("lora_name")
        if name not in state.adapters:
            return vllm_error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del state.adapters[name]
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    if not state.cfg.runtime_lora:
        return []  # vLLM registers these routes only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
    return [Route("/v1/load_lora_adapter", load, methods=["POST"]),
            Route("/v1/unload_lora_adapter", unload, methods=["POST"])]
