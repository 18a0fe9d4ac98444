"""A local OpenAI-compatible server for tests, benchmarks and fault injection.

Chat: `/v1/chat/completions` answers after a fixed delay and, at a configured rate,
misbehaves the ways real endpoints do: 429 with Retry-After, 500, a hang past the client's
timeout, a truncated body, a non-JSON body, or valid JSON whose content does not match the
requested schema. Faults are drawn from a seeded RNG per request (reproducible in aggregate).

Modes (what `/v1/models` lists and which model names chat accepts):
- default: any model name is answered; `/v1/models` lists `mock`.
- `--openai`: the provider. `/v1/models` lists `--models` (`name=shutdown_date` items; a
  date shows as the card's `shutdown_date`), unknown names are a 404 `model_not_found`;
  `/v1/files` and `/v1/fine_tuning/jobs` behave like OpenAI's (mock_finetune.py) and a
  succeeded job's `ft:` model is then listed and answered.
- `--vllm`: `vllm serve --served-model NAME --enable-lora`: the base plus LoRA adapters from
  `--lora-modules name=path,...` or loaded at runtime (`--runtime-lora`), unknown names 404
  (mock_vllm.py).

Batch API (default and `--openai` modes): `/v1/files` + `/v1/batches` as OpenAI's
(mock_batch.py): a batch completes after `--batch-seconds`; `--batch-fail-first N` fails N
lines of a batch the first time they are seen. `--reply-fill F` makes replies F of the
request's max_tokens long (token benchmarks); usage counts ~4 characters a token.

`/stats` counts requests, faults, chat requests per model name, uploaded files, created
fine-tuning jobs, batches and LoRA loads (kept in the server process across client restarts).

Also `/v1/moderations` (OpenAI's response shape: `results[]` with `flagged`, `categories`,
`category_scores`, `category_applied_input_types`; a string or a list of inputs) and, for a
model whose name contains "guard", Llama Guard style chat replies ("safe" / "unsafe\nS11",
with first-token logprobs when asked), as vLLM serves them. Their scores come from a small
fixed word list (MOD_LEXICON): the mock checks plumbing and thresholds, not judgement.

Every setting is one field of `MockConfig` (typed, unknown or bad values refused); the flags below,
`make_app(MockConfig(...))` in process and `MockServer(MockConfig(...))` in a subprocess all take it:

    python -m hybridtune.devtools.mock_openai --port 8999 --delay 0.5 --fault-rate 0.2
    python -m hybridtune.devtools.mock_openai --port 8999 --openai --ft-seconds 5
    python -m hybridtune.devtools.mock_openai --port 8000 --vllm --served-model Qwen/Qwen2.5-7B-Instruct --runtime-lora
    with MockServer(MockConfig(mode="openai", ft_seconds=0.5)) as url: ...
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..llm.fake import schema_example
from .mock_batch import batch_routes
from .mock_finetune import error, file_routes, finetune_routes
from .mock_vllm import model_cards, prompt_logprobs, render, vllm_routes, vllm_unknown_model

Fault = Literal["429", "500", "timeout", "truncated", "not_json", "wrong_schema"]
FAULTS: tuple[Fault, ...] = ("429", "500", "timeout", "truncated", "not_json", "wrong_schema")
# the provider's model list by default: OpenAI's deprecations page announces the shutdown of
# gpt-4o, gpt-4o-mini (and fine-tunes built on them) on 2027-01-14
OPENAI_MODELS = ("gpt-4o=2027-01-14,gpt-4o-2024-08-06=2027-01-14,gpt-4o-mini=2027-01-14,"
                 "gpt-4o-mini-2024-07-18=2027-01-14,gpt-4.1-mini,omni-moderation-latest")


class MockConfig(BaseModel):
    """How a mock server behaves: every setting of `make_app`, `MockServer` and the command line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay: float = Field(0.0, ge=0, description="seconds before each answer")
    fault_rate: float = Field(0.0, ge=0, le=1, description="share of requests that misbehave")
    faults: tuple[Fault, ...] = Field(FAULTS, description="the faults drawn from (comma-separated on the command line)")
    seed: int = Field(0, description="seed of the fault draws")
    hang: float = Field(30.0, gt=0, description="seconds a 'timeout' fault hangs")
    mode: Literal["any", "openai", "vllm"] = Field("any", description="any model name | the provider | vLLM + LoRA")
    models: str = Field(OPENAI_MODELS, description="openai: name[=shutdown_date],... listed by /v1/models")
    ft_seconds: float = Field(3.0, gt=0, description="openai: a fine-tuning job's duration")
    served_model: str = Field("mock", description="vllm: the base model's name")
    lora_modules: str = Field("", description="vllm: name=path,... loaded at start")
    runtime_lora: bool = Field(False, description="vllm: allow /v1/load_lora_adapter "
                               "(VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)")
    max_lora_rank: int = Field(16, ge=1, description="vllm: the largest adapter rank accepted")
    reply_fill: float | None = Field(None, gt=0, description="replies use this share of max_tokens")
    batch_seconds: float = Field(2.0, gt=0, description="a batch completes after this long")
    batch_fail_first: int = Field(0, ge=0, description="lines of a batch that fail on first sight")

    @field_validator("faults", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        return tuple(f for f in v.split(",") if f) if isinstance(v, str) else v


@dataclass
class MockState:
    """Everything the server remembers between requests (one process, many clients)."""

    cfg: MockConfig = field(default_factory=MockConfig)
    models: dict[str, dict] = field(default_factory=dict)  # openai: id -> model card
    adapters: dict[str, str] = field(default_factory=dict)  # vllm: LoRA name -> path
    files: dict[str, dict] = field(default_factory=dict)
    file_bytes: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    batches: dict[str, dict] = field(default_factory=dict)  # batch API (mock_batch.py)
    failed_once: set[str] = field(default_factory=set)
    stats: dict = field(default_factory=dict)
    by_model: Counter = field(default_factory=Counter)


def parse_models(spec: str) -> dict[str, dict]:
    """'a=2027-01-14,b' -> model cards; a date becomes the card's `shutdown_date`."""
    out = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, date = item.partition("=")
        out[name] = {"id": name, "object": "model", "created": 1700000000, "owned_by": "system",
                     **({"shutdown_date": date} if date else {})}
    return out


MOD_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
                  "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
                  "violence/graphic")
# (category, score, phrase): the mock's whole "model"; the highest matching score per category wins
MOD_LEXICON = (("self-harm/intent", 0.93, "kill myself"), ("self-harm/intent", 0.91, "end my life"),
               ("self-harm/intent", 0.62, "want to die"), ("self-harm", 0.88, "suicid"), ("self-harm", 0.84, "cut myself"),
               ("self-harm", 0.71, "better off without me"), ("self-harm/instructions", 0.8, "how many pills"),
               ("violence", 0.7, "kill him"), ("violence", 0.7, "kill her"))


def moderation_result(text: str) -> dict:
    low = text.lower()
    scores = {c: 0.0001 for c in MOD_CATEGORIES}
    for cat, score, phrase in MOD_LEXICON:
        if phrase in low:
            scores[cat] = max(scores[cat], score)
    scores["self-harm"] = max(scores["self-harm"], scores["self-harm/intent"] * 0.95)
    return {"flagged": any(v >= 0.5 for v in scores.values()), "categories": {c: v >= 0.5 for c, v in scores.items()},
            "category_scores": scores,
            "category_applied_input_types": {c: ["text"] if scores[c] >= 0.5 else [] for c in MOD_CATEGORIES}}


def guard_reply(text: str) -> tuple[str, float]:
    """Llama Guard 3's answer format and the probability it puts on "safe" first."""
    s = max(moderation_result(text)["category_scores"][c] for c in ("self-harm", "self-harm/intent"))
    return ("unsafe\nS11" if s >= 0.5 else "safe"), 1.0 - s


def tokens(text: str) -> int:
    """Token count as OpenAI's rule of thumb has it: ~4 characters of English a token."""
    return math.ceil(len(text) / 4)


def _pad(schema: dict, value, defs: dict, extra: int, seed: int):
    """`value` (a schema example) with `extra` characters of words spread over its free-text strings."""
    slots: list[tuple[object, object]] = []

    def walk(sch: dict, val, holder, key):
        if "$ref" in sch:
            sch = defs.get(sch["$ref"].split("/")[-1], {})
        for k in ("anyOf", "oneOf", "allOf"):
            if k in sch:
                sch = sch[k][0]
        if isinstance(val, dict):
            for k, v in val.items():
                walk(sch.get("properties", {}).get(k, {}), v, val, k)
        elif isinstance(val, list):
            for i, v in enumerate(val):
                walk(sch.get("items", {}), v, val, i)
        elif isinstance(val, str) and sch.get("type") == "string" and not {"enum", "const", "pattern", "format"} & set(sch):
            slots.append((holder, key, sch.get("maxLength", 10**9) - len(val) - 1))

    walk(schema, value, None, None)
    left = extra  # spread evenly; a schema's maxLength bounds a field, as it bounds a real model's
    for i, (holder, key, room) in enumerate(sorted(slots, key=lambda x: x[2])):
        add = max(0, min(room, left // (len(slots) - i)))
        holder[key] += " " + filler(add, seed + i)
        left -= add
    return value


# neutral words for padded replies (no closing phrase, no crisis cue, no speaker label)
WORDS = ("we can look at what happened this week and how it felt for you then maybe the morning "
         "routine work family friends evening walk noticed thought feeling small step plan notes "
         "kitchen garden train office weekend call message list idea pattern moment slowly often "
         "sometimes usually later earlier together practice writing reading breathing sleep").split()


def filler(n_chars: int, seed: int) -> str:
    """About n_chars of varied neutral words, the same for the same seed (replies differ like a model's)."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n_chars].rsplit(" ", 1)[0] if n_chars > 0 else ""


def completion(body: dict, n: int, reply_fill: float | None = None, wrong_schema: bool = False) -> dict:
    """The chat.completion a provider sends for `body`: a schema example for structured requests,
    else a short reply that differs by model; usage counted from the text. With `reply_fill`, the
    reply is that share of the request's max_tokens long (a real model's replies fill their budget
    partly), so token benchmarks see realistic lengths."""
    rf = body.get("response_format") or {}
    schema = rf.get("schema") or (rf.get("json_schema") or {}).get("schema")
    model = body.get("model", "mock")
    target = round(reply_fill * int(body.get("max_tokens") or 256) * 4) if reply_fill else 0
    # a reply depends on the whole request and the model, as a real model's does
    ref = zlib.crc32(json.dumps([model, body.get("messages"), body.get("seed")]).encode())
    logprobs = None
    if "guard" in str(model).lower():  # Llama Guard style: "safe" / "unsafe\nS11", first-token logprobs when asked
        convo = "\n".join(str(m.get("content", "")) for m in body["messages"] if m.get("role") == "user")
        content, p_safe = guard_reply(convo)
        if body.get("logprobs"):
            first = content.split("\n")[0]
            alt = "unsafe" if first == "safe" else "safe"
            lp = {"safe": math.log(max(p_safe, 1e-9)), "unsafe": math.log(max(1 - p_safe, 1e-9))}
            logprobs = {"content": [{"token": first, "logprob": lp[first], "bytes": None, "top_logprobs": [
                {"token": first, "logprob": lp[first], "bytes": None}, {"token": alt, "logprob": lp[alt], "bytes": None}]}]}
    elif schema is not None:
        value = {"unexpected": True} if wrong_schema else schema_example(schema)
        if target and not wrong_schema:
            value = _pad(schema, value, schema.get("$defs", {}), target - len(json.dumps(value)), ref)
        content = json.dumps(value)
    else:
        last = body["messages"][-1]["content"]
        content = f"Thank you for sharing that (ref {ref:08x}). You said: {last[:80]}"
        if target > len(content):
            content += " " + filler(target - len(content) - 1, ref)
    prompt = sum(tokens(m.get("content") or "") + 4 for m in body.get("messages", [])) + 3
    return {
        "id": f"mock-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                     **({"logprobs": logprobs} if logprobs else {})}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": tokens(content), "total_tokens": prompt + tokens(content)},
    }


def make_app(cfg: MockConfig | None = None) -> Starlette:
    cfg = cfg or MockConfig()
    mode, faults, fault_rate, delay, reply_fill = cfg.mode, cfg.faults, cfg.fault_rate, cfg.delay, cfg.reply_fill
    rng = random.Random(cfg.seed)
    state = MockState(cfg=cfg, models=parse_models(cfg.models) if mode == "openai" else {},
                      adapters=dict(x.split("=", 1) for x in cfg.lora_modules.split(",") if x.strip()))
    stats = state.stats
    stats.update({"requests": 0, **{f: 0 for f in FAULTS}, "jobs_created": 0, "lora_loads": 0,
                  "batches_created": 0, "batch_lines": 0})

    def unknown_model(name) -> Response | None:
        """The 404 a real server sends for a model it does not serve (None: served)."""
        if mode == "openai" and name not in state.models:
            return error(404, f"The model `{name}` does not exist or you do not have access to it.",
                         "model_not_found", "model")
        if mode == "vllm" and name != cfg.served_model and name not in state.adapters:
            return vllm_unknown_model(name, cfg.served_model)
        return None

    async def chat(request: Request) -> Response:
        body = await request.json()
        stats["requests"] += 1
        refused = unknown_model(body.get("model"))
        if refused is not None:
            return refused
        state.by_model[body.get("model")] += 1
        fault = rng.choice(faults) if faults and rng.random() < fault_rate else None
        if fault:
            stats[fault] += 1
        await asyncio.sleep(delay)
        if fault == "429":
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"retry-after": "0.05"})
        if fault == "500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if fault == "timeout":
            await asyncio.sleep(cfg.hang)
        payload = completion(body, stats["requests"], reply_fill, wrong_schema=fault == "wrong_schema")
        if mode == "vllm":  # token counts of the rendered prompt, and prompt_logprobs when asked (likelihood)
            toks = render(body["messages"], body.get("add_generation_prompt", True))
            payload["usage"].update(prompt_tokens=len(toks), total_tokens=len(toks) + payload["usage"]["completion_tokens"])
            if body.get("prompt_logprobs") is not None:
                payload["prompt_logprobs"] = prompt_logprobs(body.get("model"), toks)
        text = json.dumps(payload)
        if fault == "truncated":
            return Response(text[: len(text) // 2], media_type="application/json")
        if fault == "not_json":
            return Response("<html>502 Bad Gateway</html>", media_type="application/json")
        return Response(text, media_type="application/json")

    async def moderations(request: Request) -> Response:
        stats["requests"] += 1
        stats["moderations"] = stats.get("moderations", 0) + 1
        fault = rng.choice(faults) if faults and rng.random() < fault_rate else None
        await asyncio.sleep(delay)
        if fault == "429":
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"retry-after": "0.05"})
        if fault in ("500", "timeout", "truncated", "not_json", "wrong_schema"):
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
        try:
            body = await request.json()
        except ValueError:
            body = None
        inp = body.get("input") if isinstance(body, dict) else None
        refused = unknown_model(body.get("model") or "omni-moderation-latest") if isinstance(body, dict) else None
        if refused is not None:
            return refused
        if isinstance(inp, str):
            texts = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, str) or (isinstance(x, dict) and x.get("type") == "text")
                                                   for x in inp):
            texts = [x if isinstance(x, str) else str(x.get("text", "")) for x in inp]
        else:  # OpenAI's answer to a missing or malformed input
            return JSONResponse({"error": {"message": "'input' is a required property", "type": "invalid_request_error",
                                           "param": "input", "code": None}}, status_code=400)
        return JSONResponse({"id": f"modr-{stats['requests']}", "model": body.get("model") or "omni-moderation-latest",
                             "results": [moderation_result(t) for t in texts]})

    async def stats_route(request: Request) -> Response:
        return JSONResponse({**stats, "models": dict(state.by_model), "files": len(state.files)})

    async def models(request: Request) -> Response:
        if mode == "vllm":
            data = model_cards(state)
        elif mode == "openai":
            data = list(state.models.values())
        else:
            data = [{"id": "mock", "object": "model"}]
        return JSONResponse({"object": "list", "data": data})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        refused = unknown_model(name) if mode != "any" else None
        if refused is not None:
            return refused
        cards = {c["id"]: c for c in (model_cards(state) if mode == "vllm" else state.models.values())}
        return JSONResponse(cards.get(name, {"id": name, "object": "model"}))

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models),
              Route("/v1/models/{name:path}", model), Route("/stats", stats_route),
              Route("/v1/moderations", moderations, methods=["POST"])]
    if mode in ("any", "openai"):  # the batch API, as OpenAI's (and the providers that copy it)
        routes += file_routes(state) + batch_routes(state, lambda b: completion(b, 0, reply_fill))
    if mode == "openai":
        routes += finetune_routes(state)
    if mode == "vllm":
        routes += vllm_routes(state)
    return Starlette(routes=routes)


def parser() -> argparse.ArgumentParser:
    """`--port`, `--config JSON` (a whole MockConfig, as MockServer passes it) and one flag per MockConfig
    field (`--openai` / `--vllm` for `mode`); a flag given overrides the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8999)
    ap.add_argument("--config", default="{}", help="a MockConfig as JSON; the flags below override it")
    mode = ap.add_mutually_exclusive_group()
    for name, what in (("openai", "the provider: model list, files, fine-tuning jobs"),
                       ("vllm", "vLLM with --enable-lora: base + LoRA adapters")):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, default=argparse.SUPPRESS,
                          help=what)
    for name, f in MockConfig.model_fields.items():
        if name == "mode":
            continue
        kw = {"action": "store_true", "help": f.description} if f.annotation is bool else {
            "help": f"{f.description} (default {f.default})"}
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS, **kw)
    return ap


def config_of(argv: list[str] | None = None) -> tuple[MockConfig, int]:
    """The command line's MockConfig and port; a bad value exits with one line naming the flag."""
    ap = parser()
    a = vars(ap.parse_args(argv))
    port, given = a.pop("port"), json.loads(a.pop("config"))
    try:
        return MockConfig.model_validate({**given, **a}), port
    except ValidationError as e:
        err = e.errors()[0]
        ap.error(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}")
        raise  # unreachable: ap.error exits


def main(argv: list[str] | None = None) -> None:
    cfg, port = config_of(argv)
    import uvicorn

    uvicorn.run(make_app(cfg), host="127.0.0.1", port=port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()


class MockServer:
    """Run the mock in a subprocess on a free loopback port:
    `with MockServer(MockConfig(delay=0.5)) as url: ...`."""

    def __init__(self, cfg: MockConfig | None = None):
        self.cfg = cfg or MockConfig()
        self.proc = None
        self.url = ""

    def __enter__(self) -> str:
        import socket
        import subprocess
        import sys

        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = [sys.executable, "-m", "hybridtune.devtools.mock_openai", "--port", str(port),
                "--config", self.cfg.model_dump_json()]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("mock server did not start")

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.url.removesuffix("/v1") + "/stats", timeout=5).json()

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()
