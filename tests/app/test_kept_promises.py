"""What chat and serve promise the people who talk to them (the kept-conversations issue's high
items): an opted-out or merely typed conversation never reaches disk unscrubbed, saved and kept
files are owner-only, an opt-out survives the server forgetting the session, ingest takes exactly
the snapshot a reviewer accepted, and the fixed crisis reply keeps its real helpline numbers
through the scrubber into training data."""
from __future__ import annotations

import asyncio
import io
import json
import stat

import pytest
from fastapi.testclient import TestClient

from hybridtune.app import conversations as C
from hybridtune.app.engine import open_engine
from hybridtune.app.terminal import run_terminal
from hybridtune.app.web import create_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.real.pii import Scrubber
from hybridtune.safety.policy import fixed_texts, safe_response
from hybridtune.safety.rules import RiskResult

PLANTED = ["Sarah Whitfield", "Whitfield", "555-201-3344", "sarah.w@example.com"]
FIRST = "Hi, my name is Sarah Whitfield. Call me on 555-201-3344 or mail sarah.w@example.com, work is awful."
FAST = ("safety.use_model=false", "real.pii.ner=false")  # pattern recognizers only: fast, and they catch these
REPLY = "Thank you for telling me. What feels hardest about work?"


def _engine(make_cfg, *overrides, surface="chat"):
    cfg = make_cfg(*FAST, *overrides)
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend(responder=lambda req: REPLY))
    return open_engine(cfg, pool=pool, surface=surface), cfg


def _client(make_cfg, *overrides, max_sessions=64):
    base, cfg = _engine(make_cfg, *overrides, surface="serve")
    app = create_app(base.fork, max_chars=cfg.safety.max_chars, max_sessions=max_sessions)
    return TestClient(app, base_url="http://127.0.0.1"), cfg, base


def _done(resp) -> dict:
    return [json.loads(x[5:]) for x in resp.text.split("\n\n") if x.startswith("data:")][-1]


def _terminal(engine, lines: str, interactive=False) -> str:
    out = io.StringIO()
    asyncio.run(run_terminal(engine, io.StringIO(lines), out, interactive=interactive))
    return out.getvalue()


def _everything(folder) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()) if folder.exists() else ""


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# -- 1. nothing unscrubbed, nothing after an opt-out, owner-only files ----------------------------

def test_opted_out_chat_is_not_saved_by_save_or_quit(make_cfg):
    eng, cfg = _engine(make_cfg, "conversations.keep=true")
    text = _terminal(eng, f"{FIRST}\n/nokeep\n/save\n/quit\n")
    assert "not saved: this conversation is opted out" in text
    assert not any(p in _everything(cfg.run_dir) for p in PLANTED)
    assert not eng.out.file("sessions.jsonl").exists() and not C.sessions(C.folder_of(cfg))


def test_quit_saves_nothing_unasked_and_save_writes_a_scrubbed_owner_only_copy(make_cfg):
    eng, cfg = _engine(make_cfg)
    text = _terminal(eng, f"{FIRST}\n/quit\n")
    assert "not saved" in text and not eng.out.file("sessions.jsonl").exists()
    eng.reset()
    text = _terminal(eng, f"{FIRST}\n/save\n")
    saved = eng.out.file("sessions.jsonl")
    assert "names and contact details removed" in text and saved.exists()
    assert not [p for p in PLANTED if p in saved.read_text()]
    assert "work is awful" in saved.read_text()  # scrubbed, not dropped
    assert _mode(saved) == 0o600 and _mode(eng.out.path) == 0o700
    assert _mode(eng.out.file("safety_events.jsonl")) == 0o600 if eng.out.file("safety_events.jsonl").exists() else True


def test_interactive_quit_asks_before_saving(make_cfg):
    eng, _ = _engine(make_cfg)
    text = _terminal(eng, f"{FIRST}\n/quit\nn\n", interactive=True)
    assert "[y/N]" in text and "(not saved)" in text and not eng.out.file("sessions.jsonl").exists()
    eng.reset()
    _terminal(eng, f"{FIRST}\n/quit\ny\n", interactive=True)
    assert "work is awful" in eng.out.file("sessions.jsonl").read_text()


def test_serve_save_is_scrubbed_refused_after_opt_out_and_eviction_writes_nothing(make_cfg):
    c, cfg, base = _client(make_cfg, "conversations.keep=true", max_sessions=2)
    _done(c.post("/api/chat", json={"session": "s-000001", "message": FIRST}))
    assert c.post("/api/save", json={"session": "s-000001"}).json()["saved"]
    assert not [p for p in PLANTED if p in _everything(cfg.run_dir)]
    assert _mode(base.out.file("sessions.jsonl")) == 0o600
    assert all(_mode(p) == 0o600 for p in C.folder_of(cfg).iterdir() if p.is_file())
    assert _mode(C.folder_of(cfg)) == 0o700
    _done(c.post("/api/chat", json={"session": "s-000002", "message": "My manager is Tom Brady, tom.b@acme.com"}))
    c.post("/api/keep", json={"session": "s-000002", "keep": False})
    r = c.post("/api/save", json={"session": "s-000002"})
    assert r.status_code == 409 and "opted out" in r.json()["error"]
    for sid in ("s-000003", "s-000004"):  # evicts s-000002 (opted out) and s-000001
        _done(c.post("/api/chat", json={"session": sid, "message": "I cannot sleep."}))
    assert "tom.b@acme.com" not in _everything(cfg.run_dir) and "Tom Brady" not in _everything(cfg.run_dir)
    assert len(base.out.file("sessions.jsonl").read_text().splitlines()) == 1  # only the Save button's copy


# -- 2. an opt-out is the user's, not the session cache's -------------------------------------------

def test_opt_out_holds_after_the_server_evicts_the_session(make_cfg):
    c, cfg, _ = _client(make_cfg, "conversations.keep=true", max_sessions=2)
    _done(c.post("/api/chat", json={"session": "s-000001", "message": "Hello.", "keep": True}))
    assert c.post("/api/keep", json={"session": "s-000001", "keep": False}).json() == {"kept": False}
    for sid in ("s-000002", "s-000003"):  # two other people push s-000001 out of the server's memory
        _done(c.post("/api/chat", json={"session": sid, "message": "Hi."}))
    # the page still shows the box unticked and says so with the message
    done = _done(c.post("/api/chat", json={"session": "s-000001", "message": "My secret is the pills.", "keep": False}))
    assert done["kept"] is False
    assert "My secret is the pills" not in _everything(C.folder_of(cfg))


def test_opting_back_in_keeps_only_what_comes_after(make_cfg):
    eng, cfg = _engine(make_cfg, "conversations.keep=true")
    _terminal(eng, "First thing.\n/nokeep\nSaid while opted out.\n/keep\nSaid after opting in.\n/up\n")
    folder = C.folder_of(cfg)
    (conv,) = C.sessions(folder).values()
    assert [m.content for m in conv.messages if m.role == "user"] == ["Said after opting in."]
    assert "Said while opted out" not in _everything(folder) and "First thing" not in _everything(folder)
    assert C.feedback(folder)[conv.id][1].rating == "up"  # indices count from the kept part
    with pytest.raises(Exception, match="opted out"):
        eng.log.forget(eng.session_id)
        eng.log.feedback(eng.session_id, 1, "down", "")


# -- 3. ingest takes the snapshot the reviewer accepted ---------------------------------------------

def test_turns_added_after_review_do_not_reach_training(make_cfg):
    from hybridtune.curate.review.app import create_app as review_app
    from hybridtune.real.formats import expand_inputs, read_file

    c, cfg, _ = _client(make_cfg, "conversations.keep=true")
    _done(c.post("/api/chat", json={"session": "s-000001", "message": "Work is awful."}))
    rc = TestClient(review_app(cfg.run_dir), base_url="http://127.0.0.1")
    (row,) = rc.get("/api/sessions", params={"status": "queue"}).json()
    shown = rc.get(f"/api/sessions/{row['id']}").json()
    assert shown["turns"] == 2
    _done(c.post("/api/chat", json={"session": "s-000001", "message": "Something I never let anyone review."}))
    r = rc.post(f"/api/sessions/{row['id']}/decision",
                json={"action": "accept", "reviewer": "ana", "snapshot": shown["turns"]})
    assert r.status_code == 200
    folder = C.folder_of(cfg)
    assert "never let anyone review" not in (folder / "accepted.jsonl").read_text()
    raws = [raw for f in expand_inputs([str(folder)]) for raw in read_file(f, cfg.real)]
    assert [len(x.turns) for x in raws] == [2]
    # a snapshot that does not exist is refused, not silently replaced by the latest
    bad = rc.post(f"/api/sessions/{row['id']}/decision", json={"action": "accept", "reviewer": "ana", "snapshot": 3})
    assert bad.status_code == 409


# -- 4. the fixed crisis reply is never rewritten ---------------------------------------------------

def test_scrubber_leaves_every_fixed_safety_line_alone(make_cfg):
    cfg = make_cfg(*FAST)
    crisis = safe_response(RiskResult(risk="imminent", categories=["abuse", "suicide"]), cfg.safety)
    assert "1-800-799-7233" in crisis and "I'm an AI" in crisis
    plain = Scrubber(cfg.real.pii).scrub_text(crisis)
    assert plain != crisis  # the test can fail: unprotected, the scrubber does rewrite it
    guarded = Scrubber(cfg.real.pii, protected=fixed_texts(cfg.safety))
    text = f"My name is Sarah Whitfield, call 555-201-3344.\n\n{crisis}"
    out = guarded.scrub_text(text)
    assert out.endswith(crisis) and "555-201-3344" not in out and "Whitfield" not in out
    for locale in ("UK", "AU", "INTL"):
        loc = cfg.safety.model_copy(update={"locale": locale})
        for cats in ([], ["abuse"], ["suicide"]):
            t = safe_response(RiskResult(risk="high", categories=cats), loc)
            assert guarded.scrub_text(t) == t


def test_crisis_reply_reaches_training_data_with_the_real_numbers(make_cfg, fake_ctx):
    from hybridtune.curate.review.app import create_app as review_app
    from hybridtune.real.stage import run as real_run
    from hybridtune.records import Session

    c, cfg, _ = _client(make_cfg, "conversations.keep=true", "real.pii.ner=true")
    line = "My husband Tom hits me and I want to kill myself tonight."
    _done(c.post("/api/chat", json={"session": "s-000001", "message": line}))
    _done(c.post("/api/chat", json={"session": "s-000001", "message": "Thank you, I will call them."}))
    rc = TestClient(review_app(cfg.run_dir), base_url="http://127.0.0.1")
    (row,) = rc.get("/api/sessions", params={"status": "queue"}).json()
    rc.post(f"/api/sessions/{row['id']}/decision", json={"action": "accept", "reviewer": "ana", "snapshot": 4})
    folder = C.folder_of(cfg)
    ctx_cm, _ = fake_ctx("name=later", f"real.inputs=[{folder}]", "real.llm=false", "real.filters.min_turns=2")
    with ctx_cm as ctx:
        ctx.run_stage("real", real_run)
        (s,) = ctx.store.stage("real").read("sessions.jsonl", Session)
    reply = s.messages[1].content
    assert "1-800-799-7233" in reply and "https://www.thehotline.org" in reply and "I'm an AI" in reply
    assert "988 Suicide & Crisis Lifeline" in reply
    assert "Tom" not in s.messages[0].content


# -- the low items: every trace goes, an operator can delete, retention ------------------------------

def test_opt_out_removes_decisions_accepted_export_and_safety_events(make_cfg):
    from hybridtune.curate.review.app import create_app as review_app

    c, cfg, base = _client(make_cfg, "conversations.keep=true")
    _done(c.post("/api/chat", json={"session": "s-000001", "message": "I want to kill myself tonight."}))
    rc = TestClient(review_app(cfg.run_dir), base_url="http://127.0.0.1")
    (row,) = rc.get("/api/sessions", params={"status": "queue"}).json()
    rc.post(f"/api/sessions/{row['id']}/decision", json={"action": "accept", "reviewer": "ana", "snapshot": 2})
    folder = C.folder_of(cfg)
    assert row["id"] in (folder / "accepted.jsonl").read_text()
    assert row["id"] in base.out.file("safety_events.jsonl").read_text()
    c.post("/api/keep", json={"session": "s-000001", "keep": False})
    for name in ("accepted.jsonl", "decisions.jsonl", "sessions.jsonl"):
        assert row["id"] not in (folder / name).read_text(), name
    assert row["id"] not in base.out.file("safety_events.jsonl").read_text()


def test_conversations_delete_by_id_and_by_age_and_retention(make_cfg):
    import time

    from tests.test_cli import ht

    c, cfg, _ = _client(make_cfg, "conversations.keep=true")
    for sid in ("s-000001", "s-000002", "s-000003"):
        _done(c.post("/api/chat", json={"session": sid, "message": f"Hello from {sid}."}))
    folder = C.folder_of(cfg)
    ids = sorted(C.sessions(folder), key=lambda cid: C.sessions(folder)[cid].meta["started"])
    out = ht("conversations", "delete", str(cfg.run_dir), "--id", ids[0])
    assert out.returncode == 0 and "deleted 1 conversation" in out.stdout, out.stderr
    assert ids[0] not in C.sessions(folder) and "Hello from s-000001" not in _everything(folder)
    assert C.expired(folder, 1.0, now=time.time() + 2 * 86400) == set(ids[1:])
    old = json.loads((folder / "sessions.jsonl").read_text().splitlines()[0])
    old["meta"]["updated"] = time.time() - 40 * 86400  # one conversation untouched for 40 days
    rows = (folder / "sessions.jsonl").read_text().splitlines()
    (folder / "sessions.jsonl").write_text("\n".join([json.dumps(old), *rows[1:]]) + "\n")
    C.ConversationLog(folder, cfg.model_copy(update={"conversations": cfg.conversations.model_copy(
        update={"retention_days": 30})}))  # chat/serve starting with a 30-day retention
    assert list(C.sessions(folder)) == [x for x in ids[1:] if x != old["id"]]
    out = ht("conversations", "delete", str(cfg.run_dir))
    assert out.returncode == 2 and "--id" in out.stderr


def test_opting_back_in_answers_truthfully_and_feedback_after_opt_out_is_refused(make_cfg):
    c, cfg, _ = _client(make_cfg, "conversations.keep=true")
    _done(c.post("/api/chat", json={"session": "s-000001", "message": "Hello."}))
    c.post("/api/keep", json={"session": "s-000001", "keep": False})
    assert c.post("/api/feedback", json={"session": "s-000001", "index": 1, "rating": "up"}).status_code == 409
    assert c.post("/api/keep", json={"session": "s-000001", "keep": True}).json() == {"kept": True}
    done = _done(c.post("/api/chat", json={"session": "s-000001", "message": "Now you may keep this."}))
    assert done["kept"] is True
    (conv,) = C.sessions(C.folder_of(cfg)).values()
    assert [m.content for m in conv.messages if m.role == "user"] == ["Now you may keep this."]
    assert not (C.folder_of(cfg) / "feedback.jsonl").exists()
