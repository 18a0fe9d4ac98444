"""A local OpenAI-compatible `/v1/chat/completions` server for benchmarks and fault injection.

It answers after a fixed delay and, at a configured rate, misbehaves the ways real
endpoints do: 429 with Retry-After, 500, a hang past the client's timeout, a truncated
body, a non-JSON body, or valid JSON whose content does not match the requested schema.

    python -m hybridtune.devtools.mock_openai --port 8999 --delay 0.5 --fault-rate 0.2

Faults are drawn from a seeded RNG per request, so a run is reproducible in aggregate.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..llm.fake import schema_example

FAULTS = ("429", "500", "timeout", "truncated", "not_json", "wrong_schema")


def make_app(delay: float = 0.0, fault_rate: float = 0.0, faults: tuple[str, ...] = FAULTS, seed: int = 0,
             hang_s: float = 30.0) -> Starlette:
    rng = random.Random(seed)
    stats = {"requests": 0, **{f: 0 for f in FAULTS}}

    async def chat(request: Request) -> Response:
        body = await request.json()
        stats["requests"] += 1
        fault = rng.choice(faults) if faults and rng.random() < fault_rate else None
        if fault:
            stats[fault] += 1
        await asyncio.sleep(delay)
        if fault == "429":
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"retry-after": "0.05"})
        if fault == "500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if fault == "timeout":
            await asyncio.sleep(hang_s)
        rf = body.get("response_format") or {}
        schema = rf.get("schema") or (rf.get("json_schema") or {}).get("schema")
        if schema is not None:
            content = json.dumps({"unexpected": True}) if fault == "wrong_schema" else json.dumps(schema_example(schema))
        else:
            last = body["messages"][-1]["content"]
            content = f"Thank you for sharing that. You said: {last[:80]}"
        payload = {
            "id": f"mock-{stats['requests']}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "mock"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(content.split()), "total_tokens": 10},
        }
        text = json.dumps(payload)
        if fault == "truncated":
            return Response(text[: len(text) // 2], media_type="application/json")
        if fault == "not_json":
            return Response("<html>502 Bad Gateway</html>", media_type="application/json")
        return Response(text, media_type="application/json")

    async def stats_route(request: Request) -> Response:
        return JSONResponse(stats)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "mock", "object": "model"}]})

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models), Route("/stats", stats_route),
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8999)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang", type=float, default=30.0, help="seconds a 'timeout' fault hangs")
    a = ap.parse_args()
    import uvicorn

    app = make_app(a.delay, a.fault_rate, tuple(f for f in a.faults.split(",") if f), a.seed, a.hang)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()


class MockServer:
    """Run the mock in a subprocess on a free loopback port: `with MockServer(delay=0.5) as url: ...`."""

    def __init__(self, **opts):
        self.opts = opts
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
        args = [sys.executable, "-m", "hybridtune.devtools.mock_openai", "--port", str(port)]
        for k, v in self.opts.items():
            args += [f"--{k.replace('_', '-')}", ",".join(v) if isinstance(v, tuple | list) else str(v)]
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
