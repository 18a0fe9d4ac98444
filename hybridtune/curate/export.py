"""Exports of the mixed training sets: OpenAI fine-tuning JSONL (validated first), a Hugging
Face `datasets` Parquet dataset with a `messages` column, and a dataset card.

Input : runs/<name>/mix/<variant>/{train,valid}.jsonl (Session)
Output: runs/<name>/mix/<variant>/openai_{train,valid}.jsonl   {"messages": [...]} only
        runs/<name>/mix/<variant>/parquet/{train,validation}.parquet
        runs/<name>/mix/<variant>/README.md                     dataset card
        runs/<name>/mix/quarantine.jsonl                        examples that failed validation

    hybridtune export -c configs/demo.yaml     # re-export after the mix stage
    datasets.load_dataset("parquet", data_files={"train": ".../parquet/train.parquet"})
"""
from __future__ import annotations

import json
import statistics
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..context import Context
from ..meta import RealMeta
from ..records import QuarantineEntry, Session, stable_id
from ..store import StageDir, atomic_write
from ..tables import md_table
from .config import CRITERIA
from .select import session_techniques, stratum

ROLES = {"system", "user", "assistant"}
MESSAGE_KEYS = {"role", "content", "name", "weight"}
SPLITS = {"train": "train", "valid": "validation"}


@lru_cache(maxsize=1)
def _tokenizer():
    """SmolLM2's tokenizer from its packaged GGUF (vocab only: no weights loaded), or None."""
    try:
        from llama_cpp import Llama

        from ..llm.llamacpp import find_gguf, load_quietly

        return load_quietly(Llama, model_path=str(find_gguf("smollm2")), vocab_only=True)
    except Exception:  # no GGUF: fall back to an estimate, and the card says which was used
        return None


def count_tokens(text: str) -> int:
    tok = _tokenizer()
    if tok is None:
        return (len(text) + 3) // 4
    return len(tok.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def tokenizer_name() -> str:
    return "SmolLM2 tokenizer" if _tokenizer() is not None else "estimate: characters / 4"


def example_tokens(example: dict) -> int:
    # ~4 tokens of chat-format overhead per message, as in OpenAI's data-preparation guide
    return sum(count_tokens(m.get("content") or "") + 4 for m in example["messages"]) + 3


def to_openai(s: Session, system: str | None = None) -> dict:
    """{"messages": [...]}: consecutive turns of one speaker merged, trailing client turns dropped
    (nothing after the last counselor turn is trained on), and `system` put first when the
    session has no system message (train with the prompt the model will be served with)."""
    msgs: list[dict[str, str]] = []
    if system and not (s.messages and s.messages[0].role == "system"):
        msgs.append({"role": "system", "content": system.strip()})
    for m in s.messages:
        text = m.content.strip()
        if not text:
            continue
        if msgs and msgs[-1]["role"] == m.role and m.role != "system":
            msgs[-1]["content"] += "\n" + text
        else:
            msgs.append({"role": m.role, "content": text})
    while msgs and msgs[-1]["role"] == "user":
        msgs.pop()
    if msgs and all(m["role"] == "system" for m in msgs):
        msgs = []  # a system prompt alone is not an example
    return {"messages": msgs}


def validate_openai(example: Any, max_tokens: int) -> list[str]:
    """The chat fine-tuning format rules; an empty list means valid."""
    if not isinstance(example, dict) or set(example) != {"messages"}:
        return ["an example must be an object with only a `messages` key"]
    msgs = example["messages"]
    if not isinstance(msgs, list) or not msgs:
        return ["`messages` must be a non-empty list"]
    errs: list[str] = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            errs.append(f"message {i}: needs `role` and `content`")
            continue
        if set(m) - MESSAGE_KEYS:
            errs.append(f"message {i}: unrecognized keys {sorted(set(m) - MESSAGE_KEYS)}")
        if m["role"] not in ROLES:
            errs.append(f"message {i}: role {m['role']!r} is not system|user|assistant")
        if not isinstance(m["content"], str) or not m["content"].strip():
            errs.append(f"message {i}: content must be a non-empty string")
        if m["role"] == "system" and i != 0:
            errs.append(f"message {i}: a system message may only come first")
    turns = [m.get("role") for m in msgs if isinstance(m, dict) and m.get("role") != "system"]
    if any(a == b for a, b in zip(turns, turns[1:], strict=False)):
        errs.append("user and assistant messages must alternate")
    if "assistant" not in turns:
        errs.append("at least one assistant message is required")
    if not errs and (n := example_tokens(example)) > max_tokens:
        errs.append(f"{n} tokens exceed mix.max_example_tokens={max_tokens}")
    return errs


def export_variant(ctx: Context, st: StageDir, variant: str) -> dict:
    """Write the OpenAI JSONL and Parquet files of one variant; returns per-split counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: dict[str, Any] = {}
    for split, hf_split in SPLITS.items():
        sessions = list(st.read(f"{variant}/{split}.jsonl", Session))
        good, rows, bad = [], [], []
        for s in sessions:
            ex = to_openai(s, ctx.system_prompt if ctx.cfg.mix.export_system_prompt else None)
            errs = validate_openai(ex, ctx.cfg.mix.max_example_tokens)
            if errs:
                bad.append(QuarantineEntry(id=stable_id("export", variant, s.id), file=f"mix/{variant}/{split}.jsonl",
                                           reason=f"session {s.id}: {'; '.join(errs)}; dropped from the export"))
                continue
            good.append(ex)
            rows.append({"id": s.id, "source": s.source, "technique": stratum(s, "technique"),
                         "topic": stratum(s, "topic"), "messages": ex["messages"]})
        st.write_records(f"{variant}/openai_{split}.jsonl", good)
        # pyarrow directly (datasets.to_parquet draws progress bars); the schema carries the HF features
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=_features().arrow_schema), buf)
        atomic_write(st.file(f"{variant}/parquet/{hf_split}.parquet"), buf.getvalue().to_pybytes())
        if bad:
            st.append_many("quarantine.jsonl", bad)
        out[split] = {"sessions": len(sessions), "exported": len(good), "invalid": len(bad)}
    return out


def _features():
    import datasets

    msg = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({"id": datasets.Value("string"), "source": datasets.Value("string"),
                              "technique": datasets.Value("string"), "topic": datasets.Value("string"),
                              "messages": datasets.List(msg)})


def export_all(ctx: Context, st: StageDir, mix_summary: dict | None = None) -> dict:
    res = {}
    for v in (x.name for x in ctx.cfg.variant_list() if x.trained):
        res[v] = export_variant(ctx, st, v)
        summary = mix_summary or st.read_summary({})
        st.write_text(f"{v}/README.md", dataset_card(ctx, st, v, res[v], summary))
    return res


# -- dataset card -------------------------------------------------------------------------
def _dist(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"n={len(values)}, mean {statistics.mean(values):.2f}, median {statistics.median(values):.1f}, "
            f"min {min(values)}, max {max(values)}")


def _length_bucket(turns: int) -> str:
    lo = (turns - 1) // 10 * 10 + 1
    return f"{lo}-{lo + 9} turns" if turns else "0 turns"


def _table(counter: Counter, head: str) -> list[str]:
    rows = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return md_table((head, "sessions"), rows).splitlines()


def _licence(s: Session, known: dict[str, str]) -> str:
    """A real session's licence: recorded on it, or known for its reader format / input folder."""
    m = RealMeta.of(s)
    if m.licence:
        return f"{m.dataset or m.format or 'source'}: {m.licence}"
    source = Path(m.file).parent / "SOURCE.json"
    if m.file and source.is_file():  # downloaded by name (hybridtune data get): the catalogue says
        src = json.loads(source.read_text())
        return f"{src['name']}: {src['licence']} ({src['repo']}@{src['commit'][:7]})"
    folder = Path(m.file).parent.name
    for key in (m.format, folder, m.dataset):
        if key and key in known:
            return known[key]
    return f"{folder or m.format or 'unnamed source'}: licence unknown; add it under mix.licences"


def dataset_card(ctx: Context, st: StageDir, variant: str, counts: dict, mix_summary: dict) -> str:
    sessions = [s for split in SPLITS for s in st.read(f"{variant}/{split}.jsonl", Session)]
    turns = [sum(1 for m in s.messages if m.role != "system") for s in sessions]
    toks = [example_tokens(to_openai(s)) for s in sessions]
    techs = Counter(t for s in sessions for t in session_techniques(s)) or Counter({"(none recorded)": len(sessions)})
    judged = [s.scores["judge"] for s in sessions if isinstance(s.scores.get("judge"), dict)]
    crit = (*CRITERIA, "mean")
    cfg_yaml = yaml.safe_dump({"seed": ctx.cfg.seed, "curate": ctx.cfg.curate.model_dump(),
                               "mix": ctx.cfg.mix.model_dump(), "variant": ctx.cfg.variant(variant).recipe(),
                               "judge_role": ctx.cfg.roles["judge"].model_dump()}, sort_keys=False)
    front = yaml.safe_dump({"configs": [{"config_name": "default", "data_files": [
        {"split": "train", "path": "parquet/train.parquet"},
        {"split": "validation", "path": "parquet/validation.parquet"}]}],
        "task_categories": ["text-generation"], "language": ["en"]}, sort_keys=False)
    lines = [
        "---", front.strip(), "---", f"# {ctx.cfg.name}: `{variant}` training set", "",
        f"Chat-format counseling sessions (`messages`: user = client, assistant = counselor) for fine-tuning, "
        f"built by `hybridtune mix` (domain `{ctx.domain.name}`).", "",
        "| split | sessions | exported | failed validation |", "|---|---|---|---|",
        *[f"| {sp} | {c['sessions']} | {c['exported']} | {c['invalid']} |" for sp, c in counts.items()], "",
        f"Held out (no variant trains on them): test_real {mix_summary.get('files', {}).get('test_real.jsonl', '?')}, "
        f"test_synthetic {mix_summary.get('files', {}).get('test_synthetic.jsonl', '?')}. "
        f"Dropped as near-duplicates of evaluation scenarios: {mix_summary.get('contaminated', '?')} "
        f"(checked against {mix_summary.get('scenarios_checked', '?')} scenarios).", "",
        "## Counts", "", *_table(Counter(s.source for s in sessions), "source"), "",
        *_table(Counter(stratum(s, "topic") for s in sessions), "topic"), "", *_table(techs, "technique"), "",
        *_table(Counter(_length_bucket(t) for t in turns), "length"), "",
        "## Tokens", "", f"Per session ({tokenizer_name()}, with chat overhead): {_dist(toks)}; total {sum(toks)}.", "",
        "## Judge scores", "",
        "Scores of the configured judge; from a small embedded model they are close to noise.", "",
        *[f"- {c}: {_dist([j[c] for j in judged if c in j])}" for c in crit],
        f"- flags raised: {dict(Counter(f for j in judged for f in j.get('flags', []))) or 'none'}", "",
        "## Licences of real sources", "",
        *([f"- {k} ({n} sessions)" for k, n in sorted(Counter(_licence(s, ctx.cfg.mix.licences) for s in sessions
                                                             if s.source == 'real').items())]
          or ["- no real sessions"]), "",
        "## Limits", "",
        "Synthetic sessions are model-written; real sessions carry their sources' licences above. "
        "OpenAI fine-tuning needs at least 10 examples per file."
        if min(c["exported"] for c in counts.values()) < 10 else
        "Synthetic sessions are model-written; real sessions carry their sources' licences above.", "",
        "## Config that produced it", "", "```yaml", cfg_yaml.strip(), "```", "",
    ]
    return "\n".join(lines)
