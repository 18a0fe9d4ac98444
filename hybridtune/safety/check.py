"""`hybridtune safety check`: screen a JSONL file of texts.

Input: JSONL lines `{"id": ..., "text": ...}` (other fields are kept).
Output: OUT.jsonl, the same lines plus `risk`, `action` (what chat and serve would do with the
line as a conversation's first turn: none | check_in | crisis_reply), `categories`, `evidence`, `source`, `settled`,
`layers` (the screen's layers that ran) and `scores`;
beside it OUT.quarantine.jsonl (`QuarantineEntry` per rejected line: bad or too deeply nested
JSON, not an object, missing/null id, missing or empty text, too long, not text, duplicate
id) and OUT.events.jsonl (`SafetyEvent` per crisis reply, check-in or degraded screen; rewritten by a
rerun, never appended twice). One bad line never stops the file; the input is never
overwritten (OUT or a sidecar equal to the input is refused). Exit code (the CLI): 0 all
screened, 1 some lines quarantined, 2 a usage error.

    hybridtune safety check texts.jsonl --out screened.jsonl -c configs/demo.yaml [--rules-only]

The summary says which layers ran (`layers`: lines per layer) and how many lines each
layer decided (`by_source`; `degraded` = a layer failed on that line).
"""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..paths import input_file, output_file
from ..records import QuarantineEntry, stable_id
from ..safeparse import BadJSON, loads_json
from ..store import atomic_write, dump_json
from .config import SafetyConfig
from .policy import decide, events_for
from .screen import BadText, Screener, validate_text

if TYPE_CHECKING:
    from ..domain import Domain
    from ..llm import LLM


def sidecar(out: Path, kind: str) -> Path:
    return out.with_name(f"{out.stem}.{kind}.jsonl")


def parse_lines(path: Path, cfg: SafetyConfig) -> tuple[list[dict], list[QuarantineEntry]]:
    """Valid `{"id","text"}` objects and one quarantine entry per rejected line (no text quoted)."""
    good, bad, seen = [], [], set()

    def reject(n: int, why: str) -> None:
        bad.append(QuarantineEntry(id=stable_id("safety-check", str(path), n), file=str(path), line=n, reason=why))

    limit = cfg.max_chars * 8 + 1024  # a JSON line can escape each char; beyond this, do not even parse it
    input_file(path, 'a JSONL file of {"id", "text"} lines')
    with path.open("rb") as fh:  # decoded line by line: one non-UTF-8 line is quarantined, not fatal
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            if len(raw) > limit:
                reject(n, f"line has {len(raw)} bytes, over the limit for safety.max_chars={cfg.max_chars}; split or shorten the text")
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                reject(n, f"not UTF-8 text (byte {e.start + 1} of the line); save the input as UTF-8 JSONL")
                continue
            try:
                obj = loads_json(line)
            except BadJSON as e:
                reject(n, f"{e}; write one JSON object per line")
                continue
            if not isinstance(obj, dict) or "text" not in obj or "id" not in obj:
                reject(n, 'expected an object with "id" and "text" keys, e.g. {"id": "t1", "text": "..."}')
                continue
            if isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int) or not str(obj["id"]).strip():
                reject(n, f'"id" must be a non-empty string or a number, got {type(obj["id"]).__name__}; '
                          'give each line a unique id')
                continue
            try:
                validate_text(obj["text"], cfg.max_chars)
            except BadText as e:
                reject(n, f'"text": {e}')
                continue
            obj["id"] = str(obj["id"])
            if obj["id"] in seen:
                reject(n, f'duplicate id {obj["id"]!r}; give each line a unique id')
                continue
            seen.add(obj["id"])
            good.append(obj)
    return good, bad


async def check_file(
    src: Path, out: Path, cfg: SafetyConfig, llm: LLM | None = None, domain: Domain | None = None,
    screener: Screener | None = None,
) -> dict:
    """Screen every valid line of `src` into `out` (input order); returns a summary dict."""
    for o in (out, sidecar(out, "quarantine"), sidecar(out, "events")):
        output_file(o, [src])
    items, quarantine = parse_lines(src, cfg)
    screener = screener or Screener(cfg, llm, domain)
    sem = asyncio.Semaphore(cfg.check_concurrency)

    async def one(batch: list[dict]):
        async with sem:
            return await screener.screen_many([o["text"] for o in batch])

    step = 32  # the learned layer embeds a batch at once; the remote layers still go one line at a time
    batches = await asyncio.gather(*(one(items[i:i + step]) for i in range(0, len(items), step)))
    results = [r for b in batches for r in b]
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, events = [], []
    for obj, r in zip(items, results, strict=True):
        action = decide(obj["text"], r, cfg).action  # each line on its own, as the first turn of a conversation
        rows.append({**obj, "risk": r.risk, "action": action, "categories": r.categories, "evidence": r.evidence,
                     "source": r.source, "settled": r.settled, "layers": r.layers, "scores": r.scores})
        events += events_for(r, cfg, "check", ref=obj["id"], action=action)
    atomic_write(out, "".join(dump_json(r) + "\n" for r in rows))
    atomic_write(sidecar(out, "events"), "".join(dump_json(e) + "\n" for e in events))  # a rerun replaces, never duplicates
    atomic_write(sidecar(out, "quarantine"), "".join(dump_json(q) + "\n" for q in quarantine))
    return {
        "screened": len(rows), "quarantined": len(quarantine),
        "risk": dict(Counter(r.risk for r in results)), "action": dict(Counter(r["action"] for r in rows)),
        "by_source": dict(Counter(r.source for r in results)),
        "layers": {name: sum(name in r.layers for r in results) for name in screener.layer_names},
        "out": str(out), "quarantine": str(sidecar(out, "quarantine")), "events": str(sidecar(out, "events")),
    }
