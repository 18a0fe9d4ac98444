"""Mock of vLLM's LoRA serving API for `mock_openai --vllm` (tests of the GPU path on a CPU box).

Like `vllm serve BASE --enable-lora [--lora-modules name=path ...]`:
- `/v1/models` lists the base model and every loaded adapter (`root` = adapter path,
  `parent` = base), the way vLLM's model cards do;
- `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` exists only when runtime updating
  is allowed (vLLM: `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`), answers plain text on success,
  400 for a name already loaded (whatever the path) or a missing field, 404 for a path without
  `adapter_config.json` (the path shown as `<path>`), 500 for an adapter whose rank exceeds
  `--max-lora-rank` (the worker's error); `POST /v1/unload_lora_adapter {"lora_name"}`;
- a chat request for a model name that is neither the base nor a loaded adapter is a 404
  `NotFoundError` ("The model `x` does not exist. Valid aliases: base."), as vLLM answers.
  Status codes, error types and messages are those of vLLM 0.32 (CPU build), compared request by
  request in tests/train/test_vllm_real.py::test_mock_answers_lora_requests_as_the_real_server;
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


def vllm_error(status: int, message: str, type_: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": status}},
                        status_code=status)


def missing_field(field: str, body: dict) -> JSONResponse:
    """vLLM's (FastAPI's) answer to a request body without a required field."""
    msg = (f"1 validation error:\n  {{'type': 'missing', 'loc': 'body.{field}', 'msg': 'Field required', "
           f"'input': '<dict of {len(body)} items>'}}")
    return vllm_error(400, msg, "Bad Request", f"body.{field}")


def vllm_unknown_model(name: str, served_model: str) -> JSONResponse:
    return vllm_error(404, f"The model `{name}` does not exist. Valid aliases: {served_model}.", "NotFoundError",
                      "model")


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


def check_adapter(name: str, path: str, max_rank: int) -> Response | None:
    """vLLM's refusal of an adapter folder, or None when it would load."""
    cfg = Path(path) / "adapter_config.json"
    if not cfg.is_file():  # vLLM hides the path in this message
        return vllm_error(404, f"Loading lora {name} failed: No adapter found for <path>", "NotFoundError")
    r = int(json.loads(cfg.read_text()).get("r", 0))
    if r > max_rank:  # raised in the engine's worker, so vLLM answers it as a server error
        return vllm_error(500, f"Call to add_lora method failed: Worker failed with error 'LoRA rank {r} is greater "
                               f"than max_lora_rank {max_rank}.', please check the stack trace above for the root cause",
                          "InternalServerError")
    return None


def vllm_routes(state) -> list[Route]:
    async def load(request: Request) -> Response:
        body = await request.json()
        for field in ("lora_name", "lora_path"):
            if field not in body:
                return missing_field(field, body)
        name, path = body["lora_name"], body["lora_path"]
        if name in state.adapters:
            return vllm_error(400, f"The lora adapter '{name}' has already been loaded. If you want to load the "
                                   "adapter in place, set 'load_inplace' to True.", "InvalidUserInput")
        refused = check_adapter(name, path, state.cfg.max_lora_rank)
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
