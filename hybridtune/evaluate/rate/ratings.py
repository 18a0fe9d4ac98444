"""Human ratings of reply pairs: the tasks a rater sees, the stored ratings, and their export to
and import from remote raters (`hybridtune rate`, `rate-export`, `rate-import`).

A task is one client turn (a `PairUnit`, evaluate/pairwise.py: the same units the pairwise judge
compares) and two variants that answered it. Each rater gets the tasks in their own shuffled
order, each pair in a random left/right placement (seeded by rater and task, so a reload shows
the same). Variant names never reach the page.

Files in the run directory: rate/units.jsonl (PairUnit; built from simulate/sessions.jsonl when
absent), rate/ratings.jsonl (HumanRating, appended and fsync'd one by one: rater id, time,
choice, optional scores); rate/export.json (the code -> variant key of an export). An exported
folder holds rate/units.jsonl with variants renamed to opaque codes; a remote rater runs
`hybridtune rate FOLDER` on it and sends back its rate/ratings.jsonl.

    hybridtune rate-export runs/demo /tmp/for-ana && hybridtune rate /tmp/for-ana --rater ana
    hybridtune rate-import runs/demo /tmp/for-ana/rate/ratings.jsonl
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from ...errors import UserError, first_error
from ...records import Record, Session, stable_id
from ...store import StageDir
from ..pairwise import PairUnit, tasks, units

RATINGS = "ratings.jsonl"
UNITS = "units.jsonl"
KEY = "export.json"
RATER = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,39}$"
SCORE_METRICS = ("empathy", "relevance")


class Task(BaseModel):
    id: str
    unit: PairUnit
    a: str
    b: str


class SideScores(BaseModel):
    empathy: int | None = Field(None, ge=1, le=10)
    relevance: int | None = Field(None, ge=1, le=10)


class RatingIn(BaseModel):
    """What the page posts."""

    task: str = Field(pattern=r"^[0-9a-f]{16}$")
    rater: str = Field(pattern=RATER)
    choice: Literal["left", "right", "tie"]
    left: SideScores = Field(default_factory=SideScores)
    right: SideScores = Field(default_factory=SideScores)


class HumanRating(Record):
    unit: str
    a: str
    b: str
    left: str  # the variant shown on the left
    winner: str  # a variant, or "tie"
    rater: str = Field(pattern=RATER)
    at: str  # UTC, ISO 8601
    scores: dict[str, SideScores] = Field(default_factory=dict)  # variant -> optional scores

    def result_a(self) -> float:
        return 1.0 if self.winner == self.a else 0.5 if self.winner == "tie" else 0.0


def rate_dir(run_dir: Path) -> StageDir:
    return StageDir(Path(run_dir) / "rate", "rate")


def load_units(run_dir: Path) -> list[PairUnit]:
    """rate/units.jsonl, else the units of the run's simulated sessions (written there for the next time)."""
    st = rate_dir(run_dir)
    if st.file(UNITS).exists():
        return list(st.read(UNITS, PairUnit))
    sim = Path(run_dir) / "simulate"
    if not (sim / "sessions.jsonl").exists():
        raise UserError(f"{sim / 'sessions.jsonl'}: no simulated sessions; pass a run directory where `hybridtune "
                        "simulate` ran, or a folder made by `hybridtune rate-export`")
    current = json.loads((sim / "current.json").read_text()) if (sim / "current.json").exists() else None
    sessions = [s for s in StageDir(sim, "simulate").read("sessions.jsonl", Session)
                if current is None or s.id in set(current)]
    us = units(sessions)
    if not us:
        raise UserError(f"{sim / 'sessions.jsonl'}: no client turn that two or more variants answered; nothing to rate")
    st.write_records(UNITS, us)
    return us


def task_id(unit: str, a: str, b: str) -> str:
    return stable_id("rate-task", unit, a, b)


def all_tasks(us: list[PairUnit]) -> dict[str, Task]:
    return {(tid := task_id(u.id, a, b)): Task(id=tid, unit=u, a=a, b=b) for u, a, b in tasks(us)}


def order_for(rater: str, ts: dict[str, Task]) -> list[str]:
    ids = sorted(ts)
    random.Random(f"order:{rater}").shuffle(ids)
    return ids


def left_of(rater: str, t: Task) -> str:
    return t.a if random.Random(f"side:{rater}:{t.id}").random() < 0.5 else t.b


def load_ratings(run_dir: Path) -> list[HumanRating]:
    return list(rate_dir(run_dir).read(RATINGS, HumanRating)) if (Path(run_dir) / "rate" / RATINGS).exists() else []


def latest(ratings: list[HumanRating]) -> list[HumanRating]:
    """A rater's last rating of each pair (a rater may change their mind)."""
    last: dict[tuple, HumanRating] = {}
    for r in sorted(ratings, key=lambda r: r.at):
        last[(r.rater, r.unit, r.a, r.b)] = r
    return list(last.values())


def make_rating(t: Task, r: RatingIn) -> HumanRating:
    left = left_of(r.rater, t)
    right = t.b if left == t.a else t.a
    winner = {"left": left, "right": right}.get(r.choice, "tie")
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"
    scores = {v: s for v, s in ((left, r.left), (right, r.right)) if s.empathy is not None or s.relevance is not None}
    return HumanRating(id=stable_id("rating", r.rater, t.id, at), unit=t.unit.id, a=t.a, b=t.b, left=left,
                       winner=winner, rater=r.rater, at=at, scores=scores)


# -- remote raters ------------------------------------------------------------------------


def export(run_dir: Path, out: Path) -> int:
    """Write `out`/rate/units.jsonl with variants renamed to opaque codes; keep the key in the run."""
    us = load_units(run_dir)
    variants = sorted({v for u in us for v in u.replies})
    codes = {v: f"v{stable_id('rate-code', Path(run_dir).resolve().name, v)[:8]}" for v in variants}
    if (Path(out) / "rate" / RATINGS).exists():
        raise UserError(f"{out}: already holds ratings; export to an empty folder")
    dest = rate_dir(out)
    dest.write_records(UNITS, [u.model_copy(update={"replies": {codes[v]: t for v, t in u.replies.items()}})
                               for u in us])
    st = rate_dir(run_dir)
    st.write_json(KEY, {**(st.read_json(KEY, {}) or {}), **{c: v for v, c in codes.items()}})
    return len(us)


def import_ratings(run_dir: Path, files: list[Path]) -> dict[str, int]:
    """Append remote ratings to the run's (codes mapped back, units checked, duplicates skipped).
    A bad line stops the import with `file:line: what; fix` before anything is written."""
    key = rate_dir(run_dir).read_json(KEY, {}) or {}
    known = {u.id: set(u.replies) for u in load_units(run_dir)}
    have = {r.id for r in load_ratings(run_dir)}
    new: list[HumanRating] = []
    for f in files:
        if not Path(f).is_file():
            raise UserError(f"{f}: no such file; pass a rate/ratings.jsonl written by `hybridtune rate`")
        for n, line in enumerate(Path(f).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                r = HumanRating.model_validate_json(line)
            except ValidationError as e:
                raise UserError(f"{f}:{n}: not a rating ({first_error(e)}); send the rater's rate/ratings.jsonl "
                                "as is") from None
            m = {x: key.get(x, x) for x in {r.a, r.b, r.left} | ({r.winner} - {"tie"}) | set(r.scores)}
            r = r.model_copy(update={"a": m[r.a], "b": m[r.b], "left": m[r.left], "winner": m.get(r.winner, "tie"),
                                     "scores": {m[v]: s for v, s in r.scores.items()}})
            if r.unit not in known or not {r.a, r.b} <= known[r.unit]:
                raise UserError(f"{f}:{n}: rating of a pair this run does not have (unit {r.unit}); import it into "
                                "the run it was exported from")
            if r.id not in have:
                have.add(r.id)
                new.append(r)
    rate_dir(run_dir).append_many(RATINGS, new)
    return {"imported": len(new), "files": len(files)}
