"""The OpenAI chat-completions API of `serve` (`POST /v1/chat/completions`, `GET /v1/models`), with the
crisis screen and the safety policy in the path, so the openai SDK and existing chat front-ends can talk
to the counselor and never bypass the screen.

    hybridtune serve -c configs/demo.yaml --token "$SECRET"
    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8765/v1", api_key=SECRET)
    client.chat.completions.create(model="counselor", messages=[{"role": "user", "content": "hi"}])

Input: the OpenAI request body (`messages`, `stream`; sampling options are ignored: the counselor's
role config decides them). A bearer token is always required here (`serve --token`; without one these
routes answer 401), and every request passes the same web guard as the chat page
(hybridtune/webguard.py). Output: a `chat.completion` (or `chat.completion.chunk` events ending in
`[DONE]`) whose content is what the chat page would show: the counselor's reply, the fixed check-in
question, or the fixed crisis reply; the extra key `safety` carries the action, risk and categories.

The API is stateless, so each request rebuilds the conversation from its messages: every user message
is screened (the learned layer caches a window it has seen), the policy is replayed over them, and the
counselor's own earlier check-in questions and crisis replies in the history are recognised by their
fixed text. A client's `system` messages are ignored: the counselor keeps its own system prompt.
Conversations reached through this API are not kept (its users have not seen the keeping notice).
"""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..records import Message
from ..safety.policy import SafetyState, check_in_text, decide, safe_response
from ..safety.rules import RiskResult
from ..safety.screen import BadText, validate_text
from .engine import ChatEngine, ChatEvent

MAX_MESSAGES = 200
CRISIS = RiskResult(risk="high", categories=["suicide"])  # an earlier crisis reply whose turn the history does not explain


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens...: the counselor's role config decides
    model: str | None = None
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False


def _error(status: int, message: str) -> HTTPException:
    """An error the openai SDK reads: {"error": {"message", "type"}} (the app's handler wraps the detail)."""
    kind = {400: "invalid_request_error", 401: "authentication_error"}.get(status, "server_error")
    return HTTPException(status, {"message": message, "type": kind})


def _opening(engine: ChatEngine) -> str:
    """The fixed first sentence of the crisis reply, to recognise one in a client's history."""
    text = safe_response(CRISIS, engine.cfg.safety, engine.domain)
    return text.split("\n")[0].split(". ")[0]


async def replay(engine: ChatEngine, history: list[MessageIn]) -> None:
    """Load the earlier turns into `engine`: messages, and the safety state their screening and our fixed replies give."""
    users = [m.text for m in history if m.role == "user"]
    verdicts = iter(await engine.screener.screen_many(users) if users else [])
    check, opening, cfg = check_in_text(engine.domain), _opening(engine), engine.cfg.safety
    st = SafetyState()
    for m in history:
        if m.role == "user":
            st = decide(m.text, next(verdicts), cfg, st).state
        else:  # what the counselor said decides which question, if any, the next user turn answers
            crisis = opening in m.text
            last = (st.last if st.last and st.last.is_crisis else CRISIS) if crisis else None
            st = st.model_copy(update={"asked": check in m.text and not crisis, "last": last})
        engine.messages.append(Message(role=m.role, content=m.text))
    engine.safety_state = st


def _chunk(cid: str, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body)}\n\n"


def add_openai_routes(app: FastAPI, new_engine: Callable[[], ChatEngine], *, token: str | None, max_chars: int) -> None:
    """`/v1/chat/completions` and `/v1/models` on the serve app (guarded by its middleware)."""

    def authorised() -> None:
        if not token:  # the guard checks a configured token; without one these routes stay closed
            raise _error(401, "the OpenAI-compatible API needs a token: start serve with --token (or HYBRIDTUNE_SERVE_TOKEN)")

    @app.get("/v1/models")
    async def models(request: Request):
        authorised()
        name = new_engine().variant
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "hybridtune"}]}

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        authorised()
        try:
            req = CompletionIn.model_validate_json(await request.body())
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise _error(400, f"{where}: {first['msg']}; send an OpenAI chat-completions body with messages") from None
        convo = [m for m in req.messages if m.role in ("user", "assistant")]
        if not convo or convo[-1].role != "user":
            raise _error(400, "messages: the last message must be the user's; send the conversation ending with a user turn")
        try:
            text = validate_text(convo[-1].text, max_chars)
        except BadText as e:
            raise _error(400, f"messages[-1].content: {e}") from None
        engine = new_engine()
        engine.log = None  # not kept: API users have not seen the keeping notice
        await replay(engine, convo[:-1])
        cid, model = f"chatcmpl-{secrets.token_hex(12)}", engine.variant
        if req.stream:
            return StreamingResponse(_stream(engine, text, cid, model), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        content, done, failed = await _collect(engine, text)
        if failed and not content:
            raise _error(502, failed)
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, "safety": _safety(done)})


def _safety(done: ChatEvent | None) -> dict:
    return {"action": done.action, "risk": done.risk, "categories": done.categories} if done else {}


def _pieces(ev: ChatEvent, prefix_mode: bool) -> str:
    if ev.type == "safety":
        return ev.text + ("\n\n" if prefix_mode else "")
    return ev.text if ev.type == "token" else ""


async def _collect(engine: ChatEngine, text: str) -> tuple[str, ChatEvent | None, str]:
    content, done, failed = "", None, ""
    async for ev in engine.turn(text):
        content += _pieces(ev, engine.cfg.safety.response_mode == "prefix")
        failed = ev.text if ev.type == "error" else failed
        done = ev if ev.type == "done" else done
    return content.strip(), done, failed


async def _stream(engine: ChatEngine, text: str, cid: str, model: str) -> AsyncIterator[str]:
    yield _chunk(cid, model, {"role": "assistant", "content": ""})
    done = None
    try:
        async for ev in engine.turn(text):
            piece = _pieces(ev, engine.cfg.safety.response_mode == "prefix")
            if piece:
                yield _chunk(cid, model, {"content": piece})
            if ev.type == "error":
                yield f"data: {json.dumps({'error': {'message': ev.text, 'type': 'server_error'}})}\n\n"
            done = ev if ev.type == "done" else done
    except Exception as e:  # never a half-open stream without an ending
        yield f"data: {json.dumps({'error': {'message': f'internal error ({type(e).__name__})', 'type': 'server_error'}})}\n\n"
    yield _chunk(cid, model, {}, "stop", safety=_safety(done))
    yield "data: [DONE]\n\n"
