"""Fixtures of the train tests: mixed training sets written where the mix stage writes them,
and the tiny training settings that keep real LoRA runs to a few seconds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

# a few optimizer steps over short sequences: enough to move the weights, seconds on 2 cores
# one torch thread: on a shared, oversubscribed CPU more threads make each step far slower
TINY = ["train.max_steps=2", "train.batch_size=1", "train.grad_accum=1", "train.max_seq_len=384",
        "train.save_steps=1", "train.eval_steps=1000", "train.logging_steps=1", "train.lora_r=4",
        "train.lora_alpha=8", "train.learning_rate=0.01", "train.threads=1"]

USER = ["I can't stop thinking that I'll mess up my presentation.", "My boss frowned at me, so he must hate me.",
        "I failed one exam, so I'm a failure.", "Everyone at the party thought I was boring."]
COUNSELOR = ["That sounds really hard. What goes through your mind right before it?",
             "Let's look at the evidence for and against that thought together.",
             "Is there another way to see what happened?", "What would you say to a friend who thought that?"]


def session(i: int, variant: str) -> dict:
    msgs = []
    for t in range(2):
        msgs.append({"role": "user", "content": USER[(i + t) % len(USER)]})
        msgs.append({"role": "assistant", "content": f"[{variant}] " + COUNSELOR[(i * 3 + t) % len(COUNSELOR)]})
    return {"id": f"{variant}-{i}", "source": "real" if variant == "real" else "synthetic", "messages": msgs}


def write_split(path: Path, rows: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def write_mix():
    """write_mix(run_dir, 'hybrid', n=6): mix/<variant>/train.jsonl + valid.jsonl of n and 2 sessions,
    and their OpenAI export openai_train.jsonl / openai_valid.jsonl as the mix stage writes it."""

    def make(run_dir: Path, variant: str, n: int = 6) -> Path:
        folder = Path(run_dir) / "mix" / variant
        for name, rows in (("train", [session(i, variant) for i in range(n)]),
                           ("valid", [session(100 + i, variant) for i in range(2)])):
            write_split(folder / f"{name}.jsonl", rows)
            write_split(folder / f"openai_{name}.jsonl", [{"messages": r["messages"]} for r in rows])
        return folder

    return make
