"""Training data: read and validate `mix/<variant>/{train,valid}.jsonl` before any training.

Input: Session records (OpenAI/TRL `messages` format). Output: a list of `messages`
lists ready for a chat template, a content hash for the registry, and quarantine entries
for lines that cannot be used. A file where nothing usable remains is one `UserError`
naming the file and line of the first problem; single bad lines are quarantined and the
run goes on.

    rows, bad = load_split(path, system_prompt="You are ...")
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from ..errors import UserError, first_error
from ..records import QuarantineEntry, Session, stable_id


def check_messages(messages: list[dict]) -> str | None:
    """Why a conversation cannot train a chat model (None if fine). Same rules as OpenAI's validator."""
    if not messages:
        return "no messages"
    roles = [m.get("role") for m in messages]
    if any(r not in ("system", "user", "assistant") for r in roles):
        return f"unknown role in {sorted(set(map(str, roles)))}; use system, user, assistant"
    if "system" in roles[1:]:
        return "a system message is only allowed first"
    if "assistant" not in roles:
        return "no assistant (counselor) message to learn from"
    if any(not isinstance(m.get("content"), str) or not m["content"].strip() for m in messages):
        return "a message has empty or non-text content"
    return None


def _row(obj: dict, system_prompt: str | None) -> list[dict]:
    s = Session.model_validate(obj)
    msgs = [{"role": m.role, "content": m.content} for m in s.messages]
    if system_prompt and msgs and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def load_split(path: Path, system_prompt: str | None = None) -> tuple[list[list[dict]], list[QuarantineEntry]]:
    """Conversations of one JSONL file plus a quarantine entry per unusable line."""
    if not path.is_file():
        raise UserError(f"{path}: training file not found; run the `mix` stage first (hybridtune run -c CONFIG --stage mix)")
    rows: list[list[dict]] = []
    bad: list[QuarantineEntry] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                msgs = _row(obj, system_prompt)
                why = check_messages(msgs)
            except json.JSONDecodeError as e:
                why = f"not JSON ({e.msg})"
            except ValidationError as e:
                why = f"not a Session record: {first_error(e)}"
            if why:
                bad.append(QuarantineEntry(id=stable_id(str(path), n), file=str(path), line=n, reason=why))
            else:
                rows.append(msgs)
    if not rows:
        first = f" (line {bad[0].line}: {bad[0].reason})" if bad else " (file is empty)"
        raise UserError(f"{path}: no usable training conversation{first}; fix the file or rerun the mix stage")
    return rows, bad


def data_hash(*splits: list[list[dict]]) -> str:
    """sha256 of exactly what is trained on (after system-prompt insertion), order included."""
    h = hashlib.sha256()
    for split in splits:
        for msgs in split:
            h.update(json.dumps(msgs, sort_keys=True, ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
        h.update(b"\x00")
    return h.hexdigest()[:16]


def read_openai_export(path: Path) -> list[list[dict]]:
    """The `messages` lists of an OpenAI fine-tuning JSONL (the mix stage's validated export)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line)["messages"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path}:{n}: not an export line ({{\"messages\": [...]}}); rerun the mix stage "
                            "(hybridtune export -c CONFIG)") from None
    return rows
