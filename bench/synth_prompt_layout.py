"""Benchmark: prompt tokens the embedded model must read in `synth` role-play, by prompt layout.

Runs the synth stage (configs/demo.yaml, the cbt pack) with the `fake` backend answering every
turn with a fixed reply of the length SmolLM2 writes there (the demo's max_tokens: patient 60,
counselor 80, which it nearly always reaches), tokenizes every request with SmolLM2's own chat
template, and counts what a perfect prompt-state store (llm/prefix.py with no byte limit) would
still have to read: each prompt less its longest common prefix with any earlier prompt, never
under `min_prompt_batch` (8) tokens. Two layouts in the same run:
- guidance after the dialogue (the prompts' `turn` note; what synth sends), and
- guidance in the system message (the layout before: the same note appended to the system
  message, so the system message changes every turn and the dialogue after it is re-read).
No model runs, so the figures are exact and independent of machine load; the real backend
reads exactly these counts (checked against usage.json of a real run: 3222 evaluated tokens for
one session in both).

    .venv/bin/python bench/synth_prompt_layout.py --sessions 4
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import ROOT, Result, record, seed_run

from hybridtune.config import load_config
from hybridtune.context import open_run
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.llm.llamacpp import _render_prompt, find_gguf
from hybridtune.llm.prefix import PrefixSet, common_prefix
from hybridtune.synth import sessions

WORDS = ("I hear how hard this week has been for you and I want to understand what went through your mind "
         "when it happened so that we can look at it together and find a small step you could try before "
         "we meet again next time because that matters").split()


def reply(n_tokens: int, k: int) -> str:
    """About n_tokens of plain English (SmolLM2 reads ~1.3 tokens per word here), varied by k."""
    words = [WORDS[(k * 7 + i) % len(WORDS)] for i in range(int(n_tokens / 1.3))]
    return " ".join(words).capitalize() + "."


def old_layout(messages: list[dict]) -> list[dict]:
    """The layout before: the trailing guidance note folded into the system message."""
    if len(messages) > 1 and messages[-1]["role"] == "system" and messages[0]["role"] == "system":
        head = {"role": "system", "content": f"{messages[0]['content']}\n{messages[-1]['content']}"}
        return [head, *messages[1:-1]]
    return messages


def count(llm, requests: list[list[dict]], min_batch: int = 8) -> dict:
    seen: list[np.ndarray] = []
    ps = PrefixSet()
    sent = evaluated = distinct = 0
    for msgs in requests:
        toks = np.asarray(llm.tokenize(_render_prompt(llm, msgs, add_generation_prompt=True).encode(),
                                       add_bos=False, special=True), dtype=np.intc)
        best = max([common_prefix(s, toks) for s in seen] + [0])
        evaluated += len(toks) - max(0, min(best, len(toks) - min_batch))
        sent += len(toks)
        distinct += ps.add(toks)
        seen.append(toks)
    return {"calls": len(requests), "sent": sent, "evaluated": evaluated, "distinct": distinct}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=4, help="synthetic sessions (demo: 8)")
    a = ap.parse_args()
    from llama_cpp import Llama

    n = {"patient": 0, "counselor": 0}

    def responder(req) -> str:
        role = "patient" if "role-playing a client" in req.messages[0]["content"] else "counselor"
        n[role] += 1
        return reply(60 if role == "patient" else 80, n[role] + (role == "patient") * 3)

    with tempfile.TemporaryDirectory() as tmp:
        seed_run(Path(tmp) / "demo", a.sessions, 1, Path(tmp) / "models")
        cfg = load_config(str(ROOT / "configs" / "demo.yaml"), [f"runs_dir={tmp}", "quiet=true", "llm.cache=false",
                                                                 f"synth.sessions={a.sessions}", "synth.fewshot=0"])
        pool = LLMPool(cfg.pool_config())
        fake = FakeBackend(responder=responder)
        pool.install("local", fake)
        with open_run(cfg, pool=pool) as ctx:
            ctx.run_stage("synth", sessions.run)
    llm = Llama(model_path=str(find_gguf("smollm2")), vocab_only=True, verbose=False)
    new = count(llm, [r.messages for r in fake.requests])
    old = count(llm, [old_layout(r.messages) for r in fake.requests])
    cmd = f".venv/bin/python bench/synth_prompt_layout.py --sessions {a.sessions}"
    note = (f"{new['calls']} calls, {a.sessions} sessions (configs/demo.yaml, fewshot 0); fixed replies of 60/80 "
            f"tokens; perfect state store; sent {new['sent']} (after) vs {old['sent']} (before)")
    record("synth_prompt_layout", [
        Result("synth: prompt tokens read with reuse, guidance after the dialogue", f"{new['evaluated']} tokens",
               f"guidance in the system message {old['evaluated']} tokens",
               round(new["evaluated"] / old["evaluated"], 3),
               "recorded", None, cmd, note, {"after": new, "before": old}),
        Result("synth: prompt tokens read with reuse / distinct, guidance after the dialogue",
               f"{new['evaluated']} / {new['distinct']}", f"before: {old['evaluated']} / {old['distinct']}",
               round(new["evaluated"] / new["distinct"], 3), "<= 1.3", new["evaluated"] / new["distinct"] <= 1.3, cmd),
        Result("synth: prompt tokens read with reuse / sent, guidance after the dialogue",
               f"{new['evaluated']} / {new['sent']}", f"before: {old['evaluated']} / {old['sent']}",
               round(new["evaluated"] / new["sent"], 3), "recorded", None, cmd),
    ])


if __name__ == "__main__":
    main()
