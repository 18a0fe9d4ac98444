"""The shared web guard against the attacks of issue 14 (items 1, 2, 6 and the serve parts of 12),
at the HTTP level with FastAPI's TestClient; tests/hardening/test_cross_origin_browser.py does
items 1 and 2 from a real browser."""
from __future__ import annotations

import json

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from hybridtune.app.engine import open_engine
from hybridtune.app.web import create_app as chat_app
from hybridtune.curate.review.app import create_app as review_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.webguard import guarded_app
from tests.curate.helpers import session, write_curated

EVIL = {"Host": "attacker.example:18765", "Origin": "http://evil.example", "Content-Type": "text/plain"}
POISON = json.dumps({"action": "edit", "index": 1, "content": "POISONED", "reviewer": "evil"})


@pytest.fixture
def review(tmp_path):
    run = tmp_path / "runs" / "demo"
    target = session(1, words="a private transcript line", mean=5)
    write_curated(run, review=[target])
    return TestClient(review_app(run), base_url="http://127.0.0.1:8765"), target.id, run / "curate" / "decisions.jsonl"


@pytest.fixture
def chat(make_cfg):
    cfg = make_cfg("safety.use_model=false")
    pool = LLMPool(cfg.pool_config())
    fake = FakeBackend(responder=lambda req: "A reply.")
    pool.install("local", fake)
    base = open_engine(cfg, pool=pool)

    def make(host="127.0.0.1"):
        app = chat_app(base.fork, max_chars=cfg.safety.max_chars, host=host)
        shown = f"[{host}]" if ":" in host else host
        return TestClient(app, base_url=f"http://{shown}:8765"), app, fake

    return make


def test_review_dns_rebinding_and_foreign_origin_change_nothing(review):
    """Item 1: foreign Host reads nothing; a foreign Origin/text-plain POST lands nothing."""
    c, sid, decisions = review
    r = c.get("/api/sessions", params={"status": "all"}, headers={"Host": "attacker.example:18765"})
    assert r.status_code == 400 and "private transcript" not in r.text
    assert c.get(f"/api/sessions/{sid}", headers={"Host": "attacker.example:18765"}).status_code == 400
    assert c.post(f"/api/sessions/{sid}/decision", content=POISON, headers=EVIL).status_code == 400
    same_host = {**EVIL, "Host": "127.0.0.1:8765"}
    assert c.post(f"/api/sessions/{sid}/decision", content=POISON, headers=same_host).status_code == 403
    json_foreign = {**same_host, "Content-Type": "application/json"}
    assert c.post(f"/api/sessions/{sid}/decision", content=POISON, headers=json_foreign).status_code == 403
    no_origin_plain = {"Content-Type": "text/plain"}
    assert c.post(f"/api/sessions/{sid}/decision", content=POISON, headers=no_origin_plain).status_code == 415
    fetch_meta = {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}
    assert c.post(f"/api/sessions/{sid}/decision", content=POISON, headers=fetch_meta).status_code == 403
    assert not decisions.exists()
    ok = c.post(f"/api/sessions/{sid}/decision", content=POISON,
                headers={"Content-Type": "application/json", "Origin": "http://127.0.0.1:8765"})
    assert ok.status_code == 200 and len(decisions.read_text().splitlines()) == 1


def test_review_body_limit_and_deep_json(review):
    """Item 6: a huge body is refused unread (declared or streamed); deep nesting is a 400, not a 500."""
    c, sid, decisions = review
    h = {"Content-Type": "application/json"}
    big = b'{"action":"accept","reviewer":"x","note":"' + b"a" * 50_000_000 + b'"}'
    assert c.post(f"/api/sessions/{sid}/decision", content=big, headers=h).status_code == 413

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(200):
            yield b"a" * 10_000

    assert c.post(f"/api/sessions/{sid}/decision", content=chunks(), headers=h).status_code == 413
    deep = b"[" * 20_000 + b"]" * 20_000  # under the size limit: the nesting is what is refused
    r = c.post(f"/api/sessions/{sid}/decision", content=deep, headers=h)
    assert r.status_code == 400 and "nested" in r.json()["detail"]
    assert not decisions.exists()


@pytest.mark.parametrize("path", ["/api/chat", "/api/save", "/api/reset"])
def test_serve_refuses_cross_site_posts(chat, path):
    """Item 2: any page could POST text/plain JSON to drive the model; now nothing runs."""
    c, app, fake = chat()
    body = json.dumps({"session": "attacker-session", "message": "spend your budget"})
    for headers in ({"Origin": "http://evil.example", "Content-Type": "text/plain"},
                    {"Origin": "http://evil.example", "Content-Type": "application/json"},
                    {"Origin": "null", "Content-Type": "application/json"},
                    {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
                    {"Content-Type": "application/x-www-form-urlencoded"}):
        assert c.post(path, content=body, headers=headers).status_code in (403, 415), headers
    assert not app.state.sessions and not fake.requests


def test_serve_on_ipv6_loopback_answers(chat):
    """Item 12: `serve --host ::1` answered 400 to everything (Host `[::1]:8765` was split at ':')."""
    c, _, _ = chat("::1")
    assert c.get("/").status_code == 200
    r = c.post("/api/chat", json={"session": "ipv6-session", "message": "hello"}, headers={"Origin": "http://[::1]:8765"})
    assert r.status_code == 200 and '"done"' in r.text
    assert c.get("/", headers={"Host": "attacker.example"}).status_code == 400


def test_serve_session_id_with_trailing_newline_is_refused(chat):
    """Item 12: `^...$` let 'session-id\\n' through."""
    c, app, _ = chat()
    assert c.post("/api/reset", json={"session": "valid-session\n"}).status_code == 400
    assert not app.state.sessions


def test_a_route_added_later_is_guarded_by_construction():
    app = guarded_app("t", host="127.0.0.1", token=None, headers={"X-Test": "1"}, max_body=100)
    hits = []

    @app.post("/api/new")
    async def new(request: Request):
        hits.append(await request.json())
        return {"ok": True}

    c = TestClient(app, base_url="http://127.0.0.1")
    assert c.post("/api/new", json={"a": 1}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/new", json={"a": 1}, headers={"Host": "evil.example"}).status_code == 400
    assert c.post("/api/new", content=b'{"a": 1}', headers={"Content-Type": "text/plain"}).status_code == 415
    assert c.post("/api/new", json={"a": "x" * 200}).status_code == 413
    r = c.post("/api/new", json={"a": 1})
    assert r.status_code == 200 and r.headers["x-test"] == "1" and hits == [{"a": 1}]
