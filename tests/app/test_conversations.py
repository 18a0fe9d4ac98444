"""Conversations that come back (issue 16): kept only with logging on, scrubbed of planted PII by
the ingest scrubber, feedback per reply, per-conversation opt-out that deletes, review decisions
that make accepted conversations a real-data source, and the report's real-users summary."""
from __future__ import annotations

import io
import json

from fastapi.testclient import TestClient

from hybridtune.app import conversations as C
from hybridtune.app.engine import open_engine
from hybridtune.app.terminal import run_terminal
from hybridtune.app.web import create_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend

PLANTED = ["Sarah Whitfield", "Whitfield", "555-201-3344", "sarah.w@example.com"]
FIRST = "Hi, my name is Sarah Whitfield. Call me on 555-201-3344 or mail sarah.w@example.com, work is awful."
KEEP = ("safety.use_model=false", "real.pii.ner=false")  # pattern recognizers only: fast, and they catch these


def _client(make_cfg, *overrides):
    cfg = make_cfg(*KEEP, *overrides)
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend(responder=lambda req: "Thank you Sarah Whitfield, tell me more about work."))
    base = open_engine(cfg, pool=pool, surface="serve")
    return TestClient(create_app(base.fork, max_chars=cfg.safety.max_chars), base_url="http://127.0.0.1"), cfg


def _done(resp) -> dict:
    evs = [json.loads(x[5:]) for x in resp.text.split("\n\n") if x.startswith("data:")]
    return evs[-1]


def test_nothing_is_kept_with_logging_off(make_cfg):
    c, cfg = _client(make_cfg)
    assert c.get("/api/info").json()["keep"] is False
    done = _done(c.post("/api/chat", json={"session": "s-000001", "message": FIRST}))
    assert done["kept"] is False
    assert c.post("/api/feedback", json={"session": "s-000001", "index": 1, "rating": "up"}).status_code == 409
    assert not C.folder_of(cfg).exists()


def test_kept_conversation_is_scrubbed_rated_and_opted_out(make_cfg):
    c, cfg = _client(make_cfg, "conversations.keep=true")
    info = c.get("/api/info").json()
    assert info["keep"] is True and "Untick" in info["notice"]
    done = _done(c.post("/api/chat", json={"session": "s-000001", "message": FIRST}))
    assert done["kept"] is True and done["index"] == 1
    r = c.post("/api/feedback", json={"session": "s-000001", "index": 1, "rating": "up"})
    r2 = c.post("/api/feedback", json={"session": "s-000001", "index": 1, "comment": "Kind. Write to sarah.w@example.com"})
    assert r.status_code == r2.status_code == 200
    assert c.post("/api/feedback", json={"session": "s-000001", "index": 0, "rating": "up"}).status_code == 409  # a user turn
    folder = C.folder_of(cfg)
    raw = (folder / "sessions.jsonl").read_text() + (folder / "feedback.jsonl").read_text()
    assert not [p for p in PLANTED if p in raw]  # no planted PII anywhere on disk
    (conv,) = C.sessions(folder).values()
    assert conv.meta["kind"] == "conversation" and conv.meta["surface"] == "serve" and len(conv.messages) == 2
    fb = C.feedback(folder)[conv.id][1]
    assert fb.rating == "up" and fb.comment.startswith("Kind.")  # rating and comment sent apart make one record
    # a second conversation, opted out: everything of it is deleted and nothing more is written
    _done(c.post("/api/chat", json={"session": "s-000002", "message": "I cannot sleep."}))
    assert len(C.sessions(folder)) == 2
    assert c.post("/api/keep", json={"session": "s-000002", "keep": False}).json() == {"kept": False}
    assert _done(c.post("/api/chat", json={"session": "s-000002", "message": "Still awake."}))["kept"] is False
    assert list(C.sessions(folder)) == [conv.id] and "I cannot sleep" not in (folder / "sessions.jsonl").read_text()
    summary = C.summarize(folder, cfg.safety)
    assert summary["counselor"]["helpful_share"] == 1.0 and summary["counselor"]["conversations"] == 1


def test_terminal_chat_keeps_with_notice_and_commands(make_cfg):
    cfg = make_cfg(*KEEP, "conversations.keep=true")
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend(responder=lambda req: "I hear you."))
    eng = open_engine(cfg, pool=pool)
    out = io.StringIO()
    import asyncio

    asyncio.run(run_terminal(eng, io.StringIO("My week was hard.\n/down\n/comment too short\n/quit\n"), out))
    text = out.getvalue()
    assert cfg.conversations.notice in text and "(thanks, feedback kept)" in text
    fb = C.feedback(C.folder_of(cfg))[eng.session_id][1]
    assert (fb.rating, fb.comment) == ("down", "too short")


def test_accepted_conversations_are_a_real_data_source_and_reviewed_beside_synthetic(make_cfg):
    from hybridtune.curate.review.app import create_app as review_app
    from hybridtune.real.formats import expand_inputs, read_file
    from tests.curate.helpers import session, write_curated

    c, cfg = _client(make_cfg, "conversations.keep=true")
    for sid in ("s-000001", "s-000002"):
        _done(c.post("/api/chat", json={"session": sid, "message": FIRST}))
    folder = C.folder_of(cfg)
    assert expand_inputs([str(folder)]) == [folder / "accepted.jsonl"]  # nothing before review
    assert (folder / "accepted.jsonl").read_text() == ""
    write_curated(cfg.run_dir, review=[session(1, mean=5)])
    rc = TestClient(review_app(cfg.run_dir), base_url="http://127.0.0.1")
    rows = rc.get("/api/sessions", params={"status": "queue"}).json()
    assert {r["source"] for r in rows} == {"synthetic", "conversation"}  # side by side
    convs = [r for r in rows if r["source"] == "conversation"]
    detail = rc.get(f"/api/sessions/{convs[0]['id']}").json()
    assert detail["messages"][0]["role"] == "user" and "Whitfield" not in json.dumps(detail)
    r = rc.post(f"/api/sessions/{convs[0]['id']}/decision", json={"action": "accept", "reviewer": "ana"})
    assert r.status_code == 200 and r.json()["verdict"] == "accept"
    rc.post(f"/api/sessions/{convs[1]['id']}/decision", json={"action": "reject", "reviewer": "ana"})
    assert not (cfg.run_dir / "curate" / "decisions.jsonl").exists()  # conversation decisions live beside them
    raws = [raw for f in expand_inputs([str(folder)]) for raw in read_file(f, cfg.real)]
    assert [r.key for r in raws] == [convs[0]["id"]] and [t.role for t in raws[0].turns] == ["user", "assistant"]


def test_a_later_runs_report_says_how_the_counselor_did_with_real_users(make_cfg, fake_ctx):
    c, cfg = _client(make_cfg, "conversations.keep=true")
    for sid, rating in (("s-000001", "up"), ("s-000002", "down"), ("s-000003", "up")):
        _done(c.post("/api/chat", json={"session": sid, "message": "Work is awful."}))
        c.post("/api/feedback", json={"session": sid, "index": 1, "rating": rating})
    _done(c.post("/api/chat", json={"session": "s-000003", "message": "I want to kill myself tonight."}))
    folder = C.folder_of(cfg)
    cm, _ = fake_ctx("name=later", f"real.inputs=[{folder}]")
    with cm as ctx:
        md, html = C.report_section(ctx)
    assert str(folder) in md and "| counselor | 3 | 4 | 67% of 3 | 0 | 1 |" in md and "<table>" in html
