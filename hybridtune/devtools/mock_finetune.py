"""Mock of OpenAI's `/v1/files` and `/v1/fine_tuning/jobs` for `mock_openai` (tests, benchmarks).

It keeps the uploaded bytes (readable back through `GET /v1/files/{id}/content`, as on the
real API), validates a fine-tuning file the way the API does (JSON lines with `messages`,
at least 10 examples), and moves a job through the documented states on the wall clock
(`validating_files` -> `queued` -> `running` -> `succeeded` | `failed`, `ft_seconds` in
all), with message and step-metric events (newest first), checkpoints, and a
`fine_tuned_model` named `ft:<base>:<org>:<suffix>:<id>` that the chat route then serves.
State lives in the server process, so a client that is killed and restarted finds its job.

    routes = file_routes(state) + finetune_routes(state)    # state: mock_openai.MockState
"""
from __future__ import annotations

import json
import time
from email import policy
from email.parser import BytesParser

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MIN_EXAMPLES = 10  # the API rejects smaller training files
ORG = "mock-org"
AUTO_HP = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}  # what 'auto' resolves to here


def error(status: int, message: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    """OpenAI's error body."""
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
                        status_code=status)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field: (filename, raw bytes)} of a multipart/form-data body (no python-multipart needed)."""
    msg = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return out


def file_routes(state) -> list[Route]:
    async def create(request: Request) -> Response:
        form = parse_multipart(request.headers.get("content-type", ""), await request.body())
        if "file" not in form or "purpose" not in form:
            return error(400, "Missing required parameter: 'file' and 'purpose'", "missing_required_parameter")
        filename, data = form["file"]
        fid = f"file-{len(state.files) + 1:06d}"
        state.files[fid] = {"object": "file", "id": fid, "bytes": len(data), "created_at": int(time.time()),
                            "filename": filename or "upload.jsonl", "purpose": form["purpose"][1].decode(),
                            "status": "processed", "expires_at": None, "status_details": None}
        state.file_bytes[fid] = data
        return JSONResponse(state.files[fid])

    async def listing(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": list(state.files.values()), "has_more": False})

    async def get(request: Request) -> Response:
        f = state.files.get(request.path_params["fid"])
        return JSONResponse(f) if f else error(404, f"No such File object: {request.path_params['fid']}", param="id")

    async def content(request: Request) -> Response:
        fid = request.path_params["fid"]
        if fid not in state.file_bytes:
            return error(404, f"No such File object: {fid}", param="id")
        return Response(state.file_bytes[fid], media_type="application/octet-stream")

    return [Route("/v1/files", create, methods=["POST"]), Route("/v1/files", listing, methods=["GET"]),
            Route("/v1/files/{fid}", get), Route("/v1/files/{fid}/content", content)]


def check_training_file(data: bytes) -> tuple[str | None, int]:
    """(why the API would refuse the file or None, tokens in it ~ chars/4)."""
    lines = [x for x in data.decode("utf-8", errors="replace").splitlines() if x.strip()]
    for n, line in enumerate(lines, 1):
        try:
            msgs = json.loads(line)["messages"]
            assert any(m["role"] == "assistant" for m in msgs)
        except (ValueError, KeyError, TypeError, AssertionError):
            return f"Invalid file format. Line {n}: each line needs a `messages` list with an assistant message", 0
    if len(lines) < MIN_EXAMPLES:
        return f"Training file has {len(lines)} example(s), but must have at least {MIN_EXAMPLES} examples", 0
    return None, len(data) // 4


def finetune_routes(state) -> list[Route]:
    def view(job: dict) -> dict:
        """The job as the API shows it now (state advanced by elapsed time)."""
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        t = (time.time() - job["created_at"]) / max(state.cfg.ft_seconds, 1e-6)
        if t >= 0.15 and job["_error"] is not None:
            job.update(status="failed", finished_at=int(time.time()), error=job["_error"])
            _event(job, "error", f"Training file validation failed: {job['_error']['message']}")
        elif t >= 1.0:
            base = job["model"]
            job.update(status="succeeded", finished_at=int(time.time()), trained_tokens=job["_tokens"],
                       fine_tuned_model=f"ft:{base}:{ORG}:{job['user_provided_suffix']}:{job['id'][-8:]}",
                       result_files=[f"file-result-{job['id'][-8:]}"])
            card = state.models.get(base, {})
            state.models[job["fine_tuned_model"]] = {"id": job["fine_tuned_model"], "object": "model",
                                                     "created": job["finished_at"], "owned_by": ORG,
                                                     **({"shutdown_date": card["shutdown_date"]}
                                                        if card.get("shutdown_date") else {})}
            _event(job, "info", f"New fine-tuned model created: {job['fine_tuned_model']}")
            _event(job, "info", "The job has successfully completed")
        elif t >= 0.3:
            if job["status"] != "running":
                job["status"] = "running"
                _event(job, "info", "Fine-tuning job started")
            steps = job["_steps"]
            done = min(steps, 1 + int((t - 0.3) / 0.7 * steps))
            for s in range(job["_reported"] + 1, done + 1):
                loss = 2.0 / s
                _event(job, "info", f"Step {s}/{steps}: training loss={loss:.2f}", type_="metrics",
                       data={"step": s, "train_loss": loss, "train_mean_token_accuracy": min(0.99, 0.4 + s / 20),
                             "total_steps": steps})
            job["_reported"] = done
        elif t >= 0.15 and job["status"] == "validating_files":
            job["status"] = "queued"
            _event(job, "info", "Files validated, moving job to queued state")
        return job

    def public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    async def create(request: Request) -> Response:
        body = await request.json()
        model, tf = body.get("model"), body.get("training_file")
        if model not in state.models or not state.models[model].get("fine_tunable", True):
            return error(400, f"Model {model} is not available for fine-tuning or does not exist.",
                         "model_not_available", "model")
        if tf not in state.file_bytes:
            return error(400, f"invalid training_file: {tf}", "invalid_training_file", "training_file")
        vf = body.get("validation_file")
        if vf and vf not in state.file_bytes:
            return error(400, f"invalid validation_file: {vf}", "invalid_validation_file", "validation_file")
        why, tokens = check_training_file(state.file_bytes[tf])
        hp = {**AUTO_HP, **{k: v for k, v in (((body.get("method") or {}).get("supervised") or {})
                                              .get("hyperparameters") or {}).items() if v != "auto"}}
        jid = f"ftjob-{len(state.jobs) + 1:08d}"
        lines = max(1, state.file_bytes[tf].count(b"\n"))
        job = {"object": "fine_tuning.job", "id": jid, "model": model, "created_at": int(time.time()),
               "finished_at": None, "fine_tuned_model": None, "organization_id": ORG, "result_files": [],
               "status": "validating_files", "validation_file": vf, "training_file": tf, "trained_tokens": None,
               "error": None, "seed": body.get("seed", 0), "estimated_finish": None, "integrations": [],
               "user_provided_suffix": body.get("suffix"), "metadata": body.get("metadata"),
               "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}, "hyperparameters": hp,
               "_events": [], "_reported": 0, "_steps": int(hp["n_epochs"]) * -(-lines // int(hp["batch_size"])),
               "_tokens": tokens * int(hp["n_epochs"]),
               "_error": {"code": "invalid_training_file", "message": why, "param": "training_file"} if why else None}
        job["created_at"] = time.time()  # float internally: sub-second state changes in tests
        state.jobs[jid] = job
        state.stats["jobs_created"] += 1
        _event(job, "info", f"Validating training file: {tf}")
        return JSONResponse({**public(job), "created_at": int(job["created_at"])})

    def found(request: Request) -> dict | None:
        job = state.jobs.get(request.path_params["jid"])
        return view(job) if job else None

    def missing(request: Request) -> Response:
        return error(404, f"No such fine-tuning job: {request.path_params['jid']}", "fine_tune_not_found", "id")

    async def retrieve(request: Request) -> Response:
        job = found(request)
        return JSONResponse({**public(job), "created_at": int(job["created_at"])}) if job else missing(request)

    async def events(request: Request) -> Response:
        job = found(request)
        if not job:
            return missing(request)
        limit = int(request.query_params.get("limit", 20))
        evs = list(reversed(job["_events"]))[:limit]  # newest first, as the API does
        return JSONResponse({"object": "list", "data": evs, "has_more": len(job["_events"]) > limit})

    async def checkpoints(request: Request) -> Response:
        job = found(request)
        if not job:
            return missing(request)
        data = []
        if job["status"] == "succeeded":
            n = int(job["hyperparameters"]["n_epochs"])
            per = max(1, job["_steps"] // n)
            data = [{"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{job['id'][-8:]}-{e}",
                     "created_at": job["finished_at"], "fine_tuning_job_id": job["id"], "step_number": e * per,
                     "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{e * per}",
                     "metrics": {"step": e * per, "train_loss": 2.0 / (e * per)}} for e in range(n, 0, -1)]
        return JSONResponse({"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    async def cancel(request: Request) -> Response:
        job = found(request)
        if not job:
            return missing(request)
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            job.update(status="cancelled", finished_at=int(time.time()))
            _event(job, "info", "Job cancelled")
        return JSONResponse({**public(job), "created_at": int(job["created_at"])})

    async def listing(request: Request) -> Response:
        jobs = [{**public(view(j)), "created_at": int(j["created_at"])} for j in reversed(state.jobs.values())]
        return JSONResponse({"object": "list", "data": jobs, "has_more": False})

    return [Route("/v1/fine_tuning/jobs", create, methods=["POST"]), Route("/v1/fine_tuning/jobs", listing),
            Route("/v1/fine_tuning/jobs/{jid}", retrieve), Route("/v1/fine_tuning/jobs/{jid}/events", events),
            Route("/v1/fine_tuning/jobs/{jid}/checkpoints", checkpoints),
            Route("/v1/fine_tuning/jobs/{jid}/cancel", cancel, methods=["POST"])]


def _event(job: dict, level: str, message: str, type_: str = "message", data: dict | None = None) -> None:
    n = len(job["_events"]) + 1
    job["_events"].append({"object": "fine_tuning.job.event", "id": f"ftevent-{job['id'][-8:]}-{n}",
                           "created_at": int(time.time()), "level": level, "message": message,
                           "data": data or {}, "type": type_})
