"""User-facing errors: one clear line that names the file/key and the fix, never a traceback.

The CLI catches `UserError` and prints `error: <message>`; everything else is a bug.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, unreachable endpoint...)."""

    exit_code = 2


class BudgetExceeded(UserError):
    """The configured `llm.budget_usd` is spent; the run stops cleanly and can be resumed."""

    exit_code = 3


class StructuredOutputError(Exception):
    """A model's structured reply failed validation after the bounded re-asks."""

    def __init__(self, message: str, raw: str, attempts: int):
        super().__init__(message)
        self.raw = raw
        self.attempts = attempts


class TooManyFailures(UserError):
    """A stage's failure rate exceeded `llm.max_failure_rate`."""


def first_error(e) -> str:
    """'<key.path>: <message>' of a pydantic ValidationError's first error (for one-line messages)."""
    err = e.errors()[0]
    return f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg'].removeprefix('Value error, ')}"


def server_message(body, fallback: str, limit: int = 300) -> str:
    """An OpenAI-compatible server's own error message (`{"message"}` or `{"error": {"message"}}`, as
    OpenAI and vLLM send it), else `fallback`, on one line and at most `limit` characters."""
    msg = None
    if isinstance(body, dict):
        err = body.get("error")
        msg = body.get("message") or (err.get("message") if isinstance(err, dict) else None)
    return " ".join(str(msg or fallback).split())[:limit]
