"""Token use and cost per stage and role, with a budget cap.

Prompt tokens are counted three ways: sent, evaluated by the model (fewer when the embedded
backend reuses saved states) and distinct (never sent to that model instance before), so
evaluated / distinct shows how much reading is still repeated.

Cost comes from the config's price table (USD per 1M tokens by model name). The ledger is
saved in `runs/<name>/usage.json` after each stage, so a resumed run counts what was
already spent against `llm.budget_usd`.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..errors import BudgetExceeded
from ..store import atomic_write


def price_of(prices: dict, model: str):
    """The price entry of a model: its own, else for a fine-tune `ft:BASE:org:suffix:id` the
    entry `ft:BASE` (one line prices every fine-tune of a base, whose names come from the API)."""
    if model in prices:
        return prices[model]
    return prices.get(":".join(model.split(":")[:2])) if model.startswith("ft:") else None


class Usage:
    def __init__(self, prices: dict | None = None, budget_usd: float | None = None, path: Path | None = None):
        self.prices = prices or {}
        self.budget_usd = budget_usd
        self.path = path
        self.stage = "-"
        # (stage, role) -> counters
        self.rows: dict[tuple[str, str], dict[str, float]] = defaultdict(
            lambda: {"calls": 0, "cached": 0, "prompt_tokens": 0, "prompt_tokens_evaluated": 0,
                     "prompt_tokens_distinct": 0, "completion_tokens": 0, "cost_usd": 0.0, "failures": 0}
        )
        if path and path.exists():
            for r in json.loads(path.read_text()).get("rows", []):
                self.rows[(r["stage"], r["role"])].update({k: v for k, v in r.items() if k not in ("stage", "role")})

    def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = price_of(self.prices, model)
        if p is None:
            return 0.0
        return (prompt_tokens * p.input + completion_tokens * p.output) / 1e6

    @property
    def cost_usd(self) -> float:
        return sum(r["cost_usd"] for r in self.rows.values())

    def check_budget(self) -> None:
        if self.budget_usd is not None and self.cost_usd >= self.budget_usd:
            raise BudgetExceeded(
                f"llm.budget_usd: spent ${self.cost_usd:.4f} of ${self.budget_usd:.4f}; the run stopped cleanly. "
                "Raise llm.budget_usd (or --set llm.budget_usd=...) and rerun to resume."
            )

    def add(self, role: str, model: str, prompt_tokens: int, completion_tokens: int, cached: bool,
            evaluated: int | None = None, distinct: int | None = None, factor: float = 1.0) -> None:
        """`evaluated`: prompt tokens the model actually read (the embedded backend reuses saved
        states); `distinct`: those it had never been sent before. A backend that cannot tell
        (remote APIs) passes None and every sent token counts as both. `factor` scales the price
        (batch API: llm.batch_discount)."""
        row = self.rows[(self.stage, role)]
        if cached:
            row["cached"] += 1
            return
        row["calls"] += 1
        row["prompt_tokens"] += prompt_tokens
        row["prompt_tokens_evaluated"] += prompt_tokens if evaluated is None else evaluated
        row["prompt_tokens_distinct"] += prompt_tokens if distinct is None else distinct
        row["completion_tokens"] += completion_tokens
        row["cost_usd"] += self.price(model, prompt_tokens, completion_tokens) * factor

    def fail(self, role: str) -> None:
        self.rows[(self.stage, role)]["failures"] += 1

    def table(self) -> list[dict]:
        return [{"stage": s, "role": r, **v} for (s, r), v in sorted(self.rows.items())]

    def save(self) -> None:
        if self.path:
            atomic_write(self.path, json.dumps({"cost_usd": self.cost_usd, "rows": self.table()}, indent=2) + "\n")
