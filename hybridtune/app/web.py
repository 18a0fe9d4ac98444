"""Web chat: a FastAPI app serving one static page and a streaming chat API over `ChatEngine`.

Input: JSON `{"session": ID, "message": TEXT}` POSTed to /api/chat. Output: a
`text/event-stream` of `data: {ChatEvent JSON}` lines (safety, token, done, error). The
page (static/index.html + app.js, no build step) renders every text with `textContent`.

    hybridtune serve -c configs/demo.yaml --variant hybrid            # http://127.0.0.1:8765/
    hybridtune serve --host 0.0.0.0 --token "$SECRET"                 # open http://HOST:8765/#token=...

Safety of the service itself: binds 127.0.0.1 by default; anywhere else a token is required
(Authorization: Bearer) and the server refuses to start without one. Every request passes
the shared guard (hybridtune/webguard.py: Host allow-list, token, same-origin JSON-only
writes, body and nesting limits); messages are size-limited; a strict
Content-Security-Policy forbids inline script, so injected markup cannot run even if shown.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from ..errors import UserError
from ..safety.screen import BadText, validate_text
from ..webguard import LOOPBACK, guarded_app
from .engine import ChatEngine
from .terminal import DISCLAIMER

STATIC = Path(__file__).parent / "static"
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ChatIn(BaseModel):
    session: str
    message: object  # validated by validate_text so a non-string gets the same clear message
    keep: bool | None = None  # the page's "Keep this conversation" box, sent with every message


class SessionIn(BaseModel):
    session: str


class KeepIn(BaseModel):
    session: str
    keep: bool


class FeedbackIn(BaseModel):
    session: str
    index: int
    rating: Literal["up", "down"] | None = None
    comment: str = ""


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if host not in LOOPBACK and not token:
        raise UserError(f"--host {host}: binding beyond 127.0.0.1 needs --token (or HYBRIDTUNE_SERVE_TOKEN); "
                        "pick a long random secret, e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`")


def create_app(
    new_engine: Callable[[], ChatEngine], *, token: str | None = None, max_chars: int = 4000,
    host: str = "127.0.0.1", max_sessions: int = 64,
) -> FastAPI:
    """The web app bound to `host`. `new_engine()` makes one empty conversation (they share the models)."""
    max_body = max_chars * 6 + 512  # JSON escaping can grow text; beyond this the body is refused unread
    app = guarded_app("hybridtune chat", host=host, token=token, headers=HEADERS, max_body=max_body,
                      public=["/api/info"])
    sessions: OrderedDict[str, tuple[ChatEngine, asyncio.Lock]] = OrderedDict()

    def engine_for(sid: str) -> tuple[ChatEngine, asyncio.Lock]:
        if not SESSION_ID.fullmatch(sid):
            raise HTTPException(400, "session must be 8-64 letters, digits, '-' or '_'")
        if sid not in sessions:
            if len(sessions) >= max_sessions:  # evict the least recently used; nothing of it is written
                sessions.popitem(last=False)
            sessions[sid] = (new_engine(), asyncio.Lock())
        sessions.move_to_end(sid)
        return sessions[sid]

    async def body(request: Request, model: type[BaseModel]):
        try:  # the guard has bounded the body's size and nesting already
            return model.model_validate_json(await request.body())
        except ValidationError:
            raise HTTPException(400, f"expected JSON with keys {', '.join(model.model_fields)}") from None

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)

    @app.get("/app.js")
    async def script():
        return FileResponse(STATIC / "app.js", media_type="text/javascript", headers=HEADERS)

    @app.get("/style.css")
    async def style():
        return FileResponse(STATIC / "style.css", media_type="text/css", headers=HEADERS)

    @app.get("/api/info")
    async def info():
        probe = new_engine()  # cheap: shares the models; tells whether conversations are kept
        return {"disclaimer": DISCLAIMER, "max_chars": max_chars, "token_required": bool(token), "who": probe.who,
                "keep": probe.log is not None, "notice": probe.cfg.conversations.notice if probe.log else ""}

    @app.post("/api/chat")
    async def chat(request: Request):
        req = await body(request, ChatIn)
        try:
            text = validate_text(req.message, max_chars)
        except BadText as e:
            raise HTTPException(413 if isinstance(req.message, str) and len(req.message) > max_chars else 400, str(e)) from None
        engine, lock = engine_for(req.session)

        async def events():
            async with lock:  # one turn at a time per conversation
                try:
                    if req.keep is not None:  # the user's choice as the page shows it, even after an eviction
                        await asyncio.to_thread(engine.set_keep, req.keep)
                    async for ev in engine.turn(text):
                        yield f"data: {ev.model_dump_json()}\n\n"
                except Exception as e:  # never a half-open stream without an ending
                    msg = json.dumps({"type": "error", "text": f"internal error ({type(e).__name__})"})
                    yield f"data: {msg}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={**HEADERS, "X-Accel-Buffering": "no"})

    @app.post("/api/reset")
    async def reset(request: Request):
        req = await body(request, SessionIn)
        engine, lock = engine_for(req.session)
        async with lock:
            engine.reset()
        return {"ok": True}

    @app.post("/api/save")
    async def save(request: Request):
        req = await body(request, SessionIn)
        engine, lock = engine_for(req.session)
        async with lock:
            try:  # scrubbing loads spaCy: off the event loop
                s = await asyncio.to_thread(engine.save)
            except UserError as e:
                raise HTTPException(409, str(e)) from None
        return {"saved": s.id if s else None}

    @app.post("/api/keep")
    async def keep(request: Request):
        """The per-conversation opt-out (and back in): opting out deletes what was kept of it."""
        req = await body(request, KeepIn)
        engine, lock = engine_for(req.session)
        async with lock:
            await asyncio.to_thread(engine.set_keep, req.keep)
        return {"kept": engine.kept}

    @app.post("/api/feedback")
    async def feedback(request: Request):
        """Thumbs up/down and a comment on one counselor reply of a kept conversation."""
        req = await body(request, FeedbackIn)
        engine, lock = engine_for(req.session)
        async with lock:
            try:
                fb = await asyncio.to_thread(engine.rate, req.index, req.rating, req.comment)
            except UserError as e:
                raise HTTPException(409, str(e)) from None
        return {"saved": fb.id}

    app.state.sessions = sessions
    return app
