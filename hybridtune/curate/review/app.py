"""Review web app: list flagged and borderline sessions, read the dialogue, accept / reject /
edit turns. Every action is appended at once to runs/<name>/curate/decisions.jsonl (with
reviewer and time), so nothing is lost on refresh, crash or restart.

Input : runs/<name>/curate/{selected,review,rejected}.jsonl (Session), decisions.jsonl; and the
        conversations kept by serve/chat, runs/<name>/conversations/ (hybridtune.app.conversations),
        shown beside them with their users' feedback
Output: Decision records appended to runs/<name>/curate/decisions.jsonl, or for a conversation to
        runs/<name>/conversations/decisions.jsonl (then its accepted.jsonl is rewritten)

    hybridtune review runs/demo                       # http://127.0.0.1:8765
    hybridtune review runs/demo --host 0.0.0.0 --token "$REVIEW_TOKEN"

Security: binds 127.0.0.1 by default and refuses another address without a token; every
request passes the shared guard (hybridtune/webguard.py: Host allow-list against DNS
rebinding, token on every API call, same-origin JSON-only writes, body size and nesting
limits); the page renders all data with textContent
and a strict Content-Security-Policy (no HTML injection); the only file written is the
fixed decisions file, and session ids are looked up, never used as paths.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from pydantic import ValidationError

from ...errors import UserError
from ...meta import CurateMeta
from ...records import Session
from ...store import StageDir
from ...webguard import LOOPBACK, PAGE_HEADERS, guarded_app, serve_page
from ..config import CRITERIA, FLAGS
from ..decisions import DECISIONS, Decision, DecisionIn, fold, load_candidates, make_decision
from ..select import mean_score, session_techniques

STATIC = Path(__file__).parent / "static"
HEADERS = PAGE_HEADERS
MAX_BODY = 128_000  # a decision: an edited turn of at most 20 000 characters, UTF-8 and JSON-escaped


def curate_dir(run_dir: Path, conversations_ok: bool = False) -> StageDir:
    from ...app.conversations import is_folder

    d = Path(run_dir) / "curate"
    if conversations_ok and is_folder(Path(run_dir) / "conversations"):
        return StageDir(d, "curate")
    if not (d / "selected.jsonl").exists() and not (d / "review.jsonl").exists():
        raise UserError(f"{d}: no curated sessions; pass a run directory where the curate stage ran (hybridtune judge)")
    return StageDir(d, "curate")


def check_bind(host: str, token: str | None) -> None:
    if host not in LOOPBACK and not token:
        raise UserError(f"--host {host}: binding beyond 127.0.0.1 needs --token (or HYBRIDTUNE_REVIEW_TOKEN)")


def summary(sid: str, status: str, s: Session, state: dict | None) -> dict:
    j = s.scores.get("judge") or {}
    return {
        "id": sid, "source": "conversation" if status == "conversation" else s.source, "status": status, "verdict": (state or {}).get("verdict"),
        "edited": bool((state or {}).get("edits")), "mean": mean_score(s),
        "scores": {k: j.get(k) for k in CRITERIA},
        "flags": j.get("flags", []), "risk": (s.scores.get("risk") or {}).get("risk"),
        "reasons": CurateMeta.of(s).reasons, "techniques": session_techniques(s),
        "turns": len(s.messages),
    }


def matches(row: dict, status: str, flag: str, technique: str,
            min_score: float | None, max_score: float | None) -> bool:
    if status == "queue" and not (row["status"] in ("review", "conversation") and row["verdict"] is None):
        return False
    if status in ("review", "selected", "rejected", "conversation") and row["status"] != status:
        return False
    if status == "decided" and row["verdict"] is None and not row["edited"]:
        return False
    if flag and flag not in row["flags"] and not any(flag in r for r in row["reasons"]):
        return False
    if technique and technique not in row["techniques"]:
        return False
    m = row["mean"]
    if min_score is not None and (m is None or m < min_score):
        return False
    return not (max_score is not None and (m is None or m > max_score))


def conversation_rows(conv: Path) -> dict[str, tuple[str, Session]]:
    """Kept conversations as review candidates (status `conversation`), their feedback as reasons."""
    from ...app import conversations as C
    from ...safety.rules import RISK_ORDER

    if not C.is_folder(conv):
        return {}
    fbs = C.feedback(conv)
    out = {}
    for cid, s in C.sessions(conv).items():
        ratings = [f.rating for f in fbs.get(cid, {}).values() if f.rating]
        reasons = [f"{ratings.count('up')} helpful, {ratings.count('down')} not helpful",
                   *(f"comment on {i}: {f.comment}" for i, f in sorted(fbs.get(cid, {}).items()) if f.comment)]
        worst = max((r.get("risk", "none") for r in s.meta.get("safety", [])), default="none",
                    key=lambda r: RISK_ORDER.get(r, 0))
        out[cid] = ("conversation", CurateMeta(reasons=reasons).put(s).model_copy(
            update={"scores": {"risk": {"risk": worst}}}))
    return out


def shown(text: str) -> str:
    """Text as a reviewer must see it: invisible bidi and zero-width characters written out as
    [U+XXXX], so that what is read is what is there."""
    from ...real.clean import INVISIBLE_RE

    return INVISIBLE_RE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def reviewed_snapshot(conv: Path, sid: str, d: DecisionIn, latest: Session) -> Session:
    """The snapshot of a kept conversation that a decision is about: the one the page showed
    (`snapshot`, its number of turns), else the latest; `d.snapshot` is filled in either way, so
    turns the user adds after the review never reach training."""
    from ...app.conversations import snapshots

    if d.snapshot is None:
        d.snapshot = len(latest.messages)
        return latest
    s = snapshots(conv).get(sid, {}).get(d.snapshot)
    if s is None:
        raise HTTPException(409, f"snapshot {d.snapshot}: this conversation has no snapshot of that many turns; reload it")
    return s


def create_app(run_dir: Path, token: str | None = None, reviewer: str = "", host: str = "127.0.0.1") -> FastAPI:
    """The review app for a server bound to `host`."""
    from ...app.conversations import export_accepted
    from ...app.conversations import feedback as conv_feedback

    st = curate_dir(run_dir, conversations_ok=True)
    conv = Path(run_dir) / "conversations"
    app = guarded_app("hybridtune review", host=host, token=token, headers=HEADERS, max_body=MAX_BODY,
                      error_key="detail")

    def state() -> tuple[dict, dict]:
        convs = conversation_rows(conv)
        decided = list(st.read(DECISIONS, Decision))
        if convs:
            decided += StageDir(conv, "conversations").read(DECISIONS, Decision)
        return {**load_candidates(st), **convs}, fold(decided)

    serve_page(app, STATIC)

    @app.get("/api/meta")
    def meta():
        cands, _ = state()
        techs = sorted({t for _, s in cands.values() for t in session_techniques(s)})
        return {"flags": list(FLAGS), "techniques": techs, "reviewer": reviewer, "run": Path(run_dir).name}

    @app.get("/api/sessions")
    def sessions(status: str = "queue", flag: str = "", technique: str = "",
                 min_score: float | None = None, max_score: float | None = None):
        cands, folded = state()
        rows = [summary(sid, stt, s, folded.get(sid)) for sid, (stt, s) in cands.items()]
        rows = [r for r in rows if matches(r, status, flag, technique, min_score, max_score)]
        return sorted(rows, key=lambda r: (r["mean"] if r["mean"] is not None else -1, r["id"]))

    @app.get("/api/sessions/{sid}")
    def session(sid: str):
        cands, folded = state()
        if sid not in cands:
            raise HTTPException(404, "unknown session")
        status, s = cands[sid]
        stt = folded.get(sid) or {"edits": {}, "history": []}
        fb = {i: f.model_dump(include={"rating", "comment"}) for i, f in conv_feedback(conv).get(sid, {}).items()} \
            if status == "conversation" else {}
        return {**summary(sid, status, s, stt), "rationales": (s.scores.get("judge") or {}).get("rationales", {}),
                "feedback": fb,
                "messages": [{"role": m.role, "content": shown(stt["edits"].get(i, m.content)), "edited": i in stt["edits"],
                              "original": shown(m.content)} for i, m in enumerate(s.messages)],
                "history": stt["history"]}

    @app.post("/api/sessions/{sid}/decision")
    async def decide(sid: str, request: Request):
        cands, _ = state()
        if sid not in cands:
            raise HTTPException(404, "unknown session")
        try:
            d_in = DecisionIn.model_validate(await request.json())
        except (ValidationError, ValueError) as e:
            raise HTTPException(422, str(e).splitlines()[0][:300]) from None
        status, shown = cands[sid]
        if status == "conversation":
            shown = reviewed_snapshot(conv, sid, d_in, shown)
        try:
            d = make_decision(shown, d_in)
        except (ValidationError, ValueError) as e:
            raise HTTPException(422, str(e).splitlines()[0][:300]) from None
        if status == "conversation":  # its own decisions file; accepted ones become a real-data source
            StageDir(conv, "conversations").append(DECISIONS, d)
            export_accepted(conv)
        else:
            st.append(DECISIONS, d)  # fsync'd before we answer: a refresh or crash keeps it
        return session(sid)

    return app


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          reviewer: str = "") -> None:
    import uvicorn

    check_bind(host, token)
    app = create_app(run_dir, token, reviewer, host)
    uvicorn.run(app, host=host, port=port, log_level="warning")
