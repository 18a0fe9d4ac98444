"""`fake` backend: queue-driven replies for fast unit tests of logic (never for results).

    fake = FakeBackend.with_replies(["first reply", '{"score": 7}'])
    pool.install("local", fake)          # every role bound to endpoint 'local' now uses it

With an empty queue it answers from `responder(req)` if one is given, else a deterministic
stand-in: for schema requests a minimal instance of the JSON schema, otherwise a short
sentence. `backend: fake` in a config gives that stand-in, for CLI plumbing tests.
"""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from .base import Backend, ChatRequest, Completion, TransientError, register
from .config import EndpointConfig


def schema_example(schema: dict, defs: dict | None = None) -> Any:
    """A minimal value satisfying a (pydantic-generated) JSON schema."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return schema_example(defs[schema["$ref"].split("/")[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return schema_example(schema[key][0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    t = schema.get("type", "object")
    if t == "object":
        props = schema.get("properties", {})
        return {k: schema_example(v, defs) for k, v in props.items()}
    if t == "array":
        n = max(1, schema.get("minItems", 1))
        return [schema_example(schema.get("items", {"type": "string"}), defs) for _ in range(n)]
    if t == "integer":
        return int(schema.get("minimum", 5) if schema.get("minimum", 5) > 5 else min(5, schema.get("maximum", 5)))
    if t == "number":
        return float(schema.get("minimum", 5.0) if schema.get("minimum", 5.0) > 5 else min(5.0, schema.get("maximum", 5.0)))
    if t == "boolean":
        return False
    if t == "null":
        return None
    return "example text"


@register("fake")
class FakeBackend(Backend):
    def __init__(self, endpoint=None, endpoint_name: str = "fake", responder: Callable[[ChatRequest], str] | None = None):
        if endpoint is None:
            endpoint = EndpointConfig(backend="fake", model="fake")
        super().__init__(endpoint, endpoint_name)
        self.queue: deque[str | Exception] = deque()
        self.responder = responder
        self.requests: list[ChatRequest] = []

    @classmethod
    def with_replies(cls, replies: list[str | Exception], **kw) -> FakeBackend:
        fake = cls(**kw)
        fake.queue.extend(replies)
        return fake

    async def complete(self, req: ChatRequest) -> Completion:
        self.requests.append(req)
        if self.queue:
            item = self.queue.popleft()
            if isinstance(item, Exception):
                raise item
            text = item
        elif self.responder is not None:
            text = self.responder(req)
        elif req.json_schema is not None:
            text = json.dumps(schema_example(req.json_schema))
        else:
            text = "I hear you. Can you tell me more about what happened?"
        self.calls += 1
        n_in = sum(len(m["content"].split()) for m in req.messages)
        return Completion(text=text, prompt_tokens=n_in, completion_tokens=len(text.split()), model=req.model)


__all__ = ["FakeBackend", "TransientError", "schema_example"]
