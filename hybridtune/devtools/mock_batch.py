"""OpenAI-style `/v1/batches` for the mock server (mock_openai.py; files: mock_finetune.py).

Behaves like OpenAI's batch API as the client sees it: upload a JSONL file of requests
(`/v1/files`, purpose=batch), create a batch from it, poll it (`validating` -> `in_progress`
-> `completed` after `MockConfig.batch_seconds`), then download `output_file_id` (one line per finished request, with its `custom_id`) and
`error_file_id` (failed lines). In openai mode a batch naming a model the server does not list
fails validation (`status: failed`, `errors.data` with code, line and message, no output).
`MockConfig.batch_fail_first` makes that many lines fail the first time their
`custom_id` is seen (a partly failed batch); a resubmission of the same request succeeds.

    python -m hybridtune.devtools.mock_openai --port 8999 --batch-seconds 5 --batch-fail-first 2
    curl 127.0.0.1:8999/stats        # batches_created, batch_lines, files
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _file(state, data: bytes, filename: str, purpose: str) -> dict:
    """A file the server writes (a batch's output or errors), readable at /v1/files/{id}/content."""
    fid = f"file-{len(state.files) + 1:06d}"
    meta = {"object": "file", "id": fid, "bytes": len(data), "created_at": int(time.time()), "filename": filename,
            "purpose": purpose, "status": "processed", "expires_at": None, "status_details": None}
    state.files[fid], state.file_bytes[fid] = meta, data
    return meta


def batch_routes(state, answer: Callable[[dict], dict]) -> list[Route]:
    """`/v1/batches` routes. `state` (mock_openai.MockState) holds the files uploaded through
    mock_finetune's `/v1/files` and the batches; `answer(body)` is the chat completion the
    server would send for one line."""

    async def create(request: Request) -> Response:
        body = await request.json()
        fid = body.get("input_file_id")
        if fid not in state.file_bytes:
            return JSONResponse({"error": {"message": f"input_file_id {fid} not found"}}, status_code=400)
        bid = f"batch_{uuid.uuid4().hex[:24]}"
        lines = [json.loads(x) for x in state.file_bytes[fid].decode().splitlines() if x.strip()]
        now = int(time.time())
        state.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"), "errors": None,
            "input_file_id": fid, "completion_window": body.get("completion_window", "24h"), "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
            "expires_at": now + 86400, "completed_at": None, "metadata": body.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "_t0": time.monotonic(),
        }
        state.stats["batches_created"] += 1
        state.stats["batch_lines"] += len(lines)
        return JSONResponse(_public(state.batches[bid]))

    def finish(b: dict) -> None:
        lines = [json.loads(x) for x in state.file_bytes[b["input_file_id"]].decode().splitlines() if x.strip()]
        out, err = [], []
        failing = 0
        for i, line in enumerate(lines):
            cid = line["custom_id"]
            if failing < state.cfg.batch_fail_first and cid not in state.failed_once:
                failing += 1
                state.failed_once.add(cid)
                err.append({"id": f"batch_req_{i}", "custom_id": cid, "response": None,
                            "error": {"code": "server_error", "message": "The server had an error processing this line"}})
                continue
            out.append({"id": f"batch_req_{i}", "custom_id": cid, "error": None,
                        "response": {"status_code": 200, "request_id": f"req_{i}", "body": answer(line["body"])}})
        dump = "".join(json.dumps(x) + "\n" for x in out).encode()
        b["output_file_id"] = _file(state, dump, "batch_output.jsonl", "batch_output")["id"] if out else None
        if err:
            b["error_file_id"] = _file(state, "".join(json.dumps(x) + "\n" for x in err).encode(),
                                       "batch_errors.jsonl", "batch_output")["id"]
        b.update(status="completed", completed_at=int(time.time()),
                 request_counts={"total": len(lines), "completed": len(out), "failed": len(err)})

    def invalid(b: dict) -> list[dict]:
        """What OpenAI's validation reports in `errors.data` (openai mode: a model it does not serve)."""
        lines = [json.loads(x) for x in state.file_bytes[b["input_file_id"]].decode().splitlines() if x.strip()]
        if state.cfg.mode != "openai":
            return []
        return [{"code": "model_not_found", "line": i, "param": "body.model",
                 "message": f"The model `{line['body'].get('model')}` does not exist or you do not have access to it."}
                for i, line in enumerate(lines, 1) if line["body"].get("model") not in state.models]

    async def retrieve(request: Request) -> Response:
        b = state.batches.get(request.path_params["bid"])
        if b is None:
            return JSONResponse({"error": {"message": "No such Batch object"}}, status_code=404)
        age = time.monotonic() - b["_t0"]
        if b["status"] == "validating" and age >= 0.2 * state.cfg.batch_seconds and (errs := invalid(b)):
            b.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": errs})
        if b["status"] == "validating" and age >= 0.2 * state.cfg.batch_seconds:
            b.update(status="in_progress", in_progress_at=int(time.time()))
        if b["status"] == "in_progress" and age >= state.cfg.batch_seconds:
            finish(b)
        return JSONResponse(_public(b))

    return [
        Route("/v1/batches", create, methods=["POST"]),
        Route("/v1/batches/{bid}", retrieve),
    ]


def _public(b: dict) -> dict:
    return {k: v for k, v in b.items() if not k.startswith("_")}
