"""The one request guard of both local web apps (`serve` chat, `review`), built in by `guarded_app`.

    app = guarded_app("hybridtune review", host="127.0.0.1", token=None, headers=HEADERS,
                      max_body=256_000)
    @app.post("/api/x")            # guarded by construction: a new route cannot forget it
    async def x(request: Request): ...

Checks, in order, on every request (an ASGI middleware, so it also covers routes added later
and the static files):
1. Host: the bound address or a loopback name (DNS rebinding); any Host when bound to a
   wildcard address, where the token is required anyway. Parsed here rather than with
   Starlette's TrustedHostMiddleware, which splits `[::1]:8765` at the first colon and so
   refuses every request to `--host ::1`.
2. Token (Authorization: Bearer, constant-time) on the `token_paths` (default /api/) except the public ones.
3. State-changing methods: Origin, when sent, must be this very origin; otherwise
   Sec-Fetch-Site must be same-origin or none; the body must be `application/json` (a
   cross-site page can send text/plain or a form without a CORS preflight, never JSON).
4. Body: at most `max_body` bytes, or a path prefix's own limit in `body_limits` (Content-Length
   and counted as it streams, 413); a JSON
   body nested deeper than MAX_JSON_DEPTH is refused (400) before any route parses it.
Security headers are added to every response, the guard's own refusals included.
"""
from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .safeparse import MAX_JSON_DEPTH, json_depth

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(header: str) -> str | None:
    """'127.0.0.1:8765' -> '127.0.0.1', '[::1]:8765' -> '::1'; None when malformed."""
    try:
        parts = urlsplit("//" + header)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return (parts.hostname or "").rstrip(".") or None


def allowed_hosts(bound: str) -> set[str] | None:
    """Host names this server answers to; None = any (bound to a wildcard address)."""
    if bound in WILDCARD:
        return None
    return {bound.strip("[]").lower(), *LOOPBACK}


class Guard:
    """The ASGI middleware doing checks 1-4 (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, host: str, token: str | None, headers: dict[str, str], max_body: int,
                 public: Iterable[str] = (), error_key: str = "error", token_paths: Iterable[str] = ("/api/",),
                 body_limits: dict[str, int] | None = None, openai_errors: Iterable[str] = ()):
        self.app, self.token, self.max_body, self.error_key = app, token, max_body, error_key
        self.openai_errors = tuple(openai_errors)  # path prefixes whose refusals read {"error": {"message": ...}}
        self.token_paths = tuple(token_paths)
        self.body_limits = dict(body_limits or {})
        self.hosts = allowed_hosts(host)
        self.public = set(public)
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def refuse(self, send: Send, status: int, message: str, path: str = "") -> None:
        nested = bool(self.openai_errors) and path.startswith(self.openai_errors)
        body = json.dumps({self.error_key: {"message": message, "type": "invalid_request_error"} if nested else message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *self.headers]})
        await send({"type": "http.response.body", "body": body})

    def limit(self, path: str) -> int:
        """The body limit of a path: the first `body_limits` prefix it starts with, else `max_body`."""
        return next((n for prefix, n in self.body_limits.items() if path.startswith(prefix)), self.max_body)

    def problem(self, scope: Scope, h: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) when the request is refused before reading its body."""
        host = h.get("host", "")
        name = host_name(host)
        if name is None or (self.hosts is not None and name.lower() not in self.hosts):
            return 400, "unexpected Host header; open the page at the address the server was started on"
        path = scope["path"]
        if self.token and path.startswith(self.token_paths) and path not in self.public:
            given = h.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401, "missing or wrong token; open the page as /#token=YOUR_TOKEN"
        if scope["method"] not in SAFE_METHODS:
            origin = h.get("origin")
            if origin is not None:
                if origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
                    return 403, "cross-origin request refused"
            elif h.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return 403, "cross-site request refused"
            if h.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return 415, "send the body as Content-Type: application/json"
        size, limit = h.get("content-length"), self.limit(path)
        if size is not None and (not size.isdigit() or int(size) > limit):
            return 413, f"request too large (limit {limit} bytes)"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # no websocket routes: refuse rather than reason about them
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        h = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        bad = self.problem(scope, h)
        if bad:
            await self.refuse(send, *bad, path=scope["path"])
            return

        async def send_with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *(x for x in self.headers if x[0] not in have)]}
            await send(msg)

        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        # read the whole (bounded) body, check its nesting, then replay it to the route
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > self.limit(scope["path"]):
                await self.refuse(send, 413, f"request too large (limit {self.limit(scope['path'])} bytes)", scope["path"])
                return
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        if json_depth(raw.decode("utf-8", "replace")) > MAX_JSON_DEPTH:
            await self.refuse(send, 400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", scope["path"])
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send_with_headers)


def guarded_app(title: str, *, host: str, token: str | None, headers: dict[str, str], max_body: int,
                public: Iterable[str] = (), error_key: str = "error", token_paths: Iterable[str] = ("/api/",),
                body_limits: dict[str, int] | None = None, openai_errors: Iterable[str] = ()) -> FastAPI:
    """A FastAPI app with the Guard as its outermost middleware and JSON error replies."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, middleware=[
        Middleware(Guard, host=host, token=token, headers=headers, max_body=max_body, public=public,
                   error_key=error_key, token_paths=token_paths, body_limits=body_limits,
                   openai_errors=openai_errors)])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({error_key: exc.detail}, status_code=exc.status_code)

    return app


PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
# the headers of a page app (review, rate): only this origin's own script and style, never framed
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def serve_page(app: FastAPI, static: Path) -> None:
    """The page of a local web app: `/` is static/index.html, `/static/{name}` one of PAGE_FILES (a fixed
    list: no path ever comes from the URL)."""
    from fastapi.responses import FileResponse

    @app.get("/")
    def index():
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/static/{name}")
    def page_file(name: str):
        if name not in PAGE_FILES:
            raise HTTPException(404)
        return FileResponse(static / name, media_type=PAGE_FILES[name])
