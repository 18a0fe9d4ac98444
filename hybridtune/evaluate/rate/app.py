"""Blind side-by-side rating page: a rater sees one client turn in its dialogue and two variants'
replies, in random order and unnamed, and picks the better one or a tie (keys 1, 2, t), with
optional empathy/relevance scores; progress is shown. Every rating is appended at once to
RUN/rate/ratings.jsonl with rater id and time (ratings.py).

    hybridtune rate runs/demo                          # http://127.0.0.1:8766
    hybridtune rate runs/demo --host 0.0.0.0 --token "$HYBRIDTUNE_RATE_TOKEN"

Security: as the review app (curate/review/app.py): 127.0.0.1 unless a token is given, every
request through the shared guard (hybridtune/webguard.py), data inserted as text under a
strict Content-Security-Policy; task ids are looked up, never used as paths; variant names
never leave the server.
"""
from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from pydantic import ValidationError

from ...webguard import PAGE_HEADERS, guarded_app, serve_page
from .ratings import (RATER, RATINGS, SCORE_METRICS, RatingIn, Task, all_tasks, latest, left_of, load_ratings,
                      load_units, make_rating, order_for, rate_dir, task_id)

STATIC = Path(__file__).parent / "static"
HEADERS = PAGE_HEADERS
MAX_BODY = 4_000  # a rating: ids, a choice and four small integers


def view(t: Task, rater: str) -> dict:
    """What the page may see of a task: no variant names."""
    left = left_of(rater, t)
    right = t.b if left == t.a else t.a
    return {"id": t.id, "context": [{"role": m.role, "content": m.content} for m in t.unit.context],
            "left": t.unit.replies[left], "right": t.unit.replies[right]}


def create_app(run_dir: Path, token: str | None = None, rater: str = "", host: str = "127.0.0.1") -> FastAPI:
    ts = all_tasks(load_units(run_dir))
    st = rate_dir(run_dir)
    app = guarded_app("hybridtune rate", host=host, token=token, headers=HEADERS, max_body=MAX_BODY,
                      error_key="detail")

    def done_by(name: str) -> set[str]:
        return {task_id(r.unit, r.a, r.b) for r in latest(load_ratings(run_dir)) if r.rater == name}

    serve_page(app, STATIC)

    @app.get("/api/meta")
    def meta():
        return {"run": Path(run_dir).name, "rater": rater, "total": len(ts), "metrics": list(SCORE_METRICS)}

    @app.get("/api/next")
    def next_task(rater: str = ""):
        if not re.match(RATER, rater):
            raise HTTPException(422, "rater: 1-40 letters, digits, space, . _ @ - (starting with a letter or digit)")
        done = done_by(rater)
        todo = [i for i in order_for(rater, ts) if i not in done]
        return {"done": len(ts) - len(todo), "total": len(ts), "task": view(ts[todo[0]], rater) if todo else None}

    @app.post("/api/rate")
    async def rate(request: Request):
        try:
            r = RatingIn.model_validate(await request.json())
        except (ValidationError, ValueError) as e:
            raise HTTPException(422, str(e).splitlines()[0][:300]) from None
        if r.task not in ts:
            raise HTTPException(404, "unknown task")
        st.append(RATINGS, make_rating(ts[r.task], r))  # fsync'd before we answer
        return next_task(r.rater)

    return app


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8766, token: str | None = None, rater: str = "") -> None:
    import uvicorn

    from ...curate.review.app import check_bind

    check_bind(host, token)
    uvicorn.run(create_app(run_dir, token, rater, host), host=host, port=port, log_level="warning")
