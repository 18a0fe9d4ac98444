"""Web chat API (FastAPI TestClient): streaming events, safety response, token auth,
bind policy, Host check, size limits, session handling and security headers."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from hybridtune.app.engine import open_engine
from hybridtune.app.web import STATIC, check_bind, create_app
from hybridtune.errors import UserError
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend

SID = "test-session-1"


def _client(make_cfg, *replies, token=None, host="127.0.0.1", max_sessions=64):
    cfg = make_cfg("safety.use_model=false")
    pool = LLMPool(cfg.pool_config())
    fake = FakeBackend.with_replies(list(replies))
    pool.install("local", fake)
    base = open_engine(cfg, pool=pool)
    app = create_app(base.fork, token=token, max_chars=cfg.safety.max_chars, host=host, max_sessions=max_sessions)
    return TestClient(app, base_url=f"http://{host}"), app, base


def _events(resp):
    return [json.loads(line[5:]) for line in resp.text.split("\n\n") if line.startswith("data:")]


def test_page_has_disclaimer_and_strict_headers(make_cfg):
    c, _, _ = _client(make_cfg)
    r = c.get("/")
    assert r.status_code == 200 and "not a substitute for professional care" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in r.text  # no inline script: the CSP would block it
    assert c.get("/app.js").status_code == 200 and c.get("/api/info").json()["max_chars"] == 4000


def test_chat_streams_reply_and_crisis_gets_safe_response(make_cfg):
    c, _, base = _client(make_cfg, "It sounds like a stressful week.")
    r = c.post("/api/chat", json={"session": SID, "message": "My week was stressful"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = _events(r)
    assert "".join(e["text"] for e in evs if e["type"] == "token") == "It sounds like a stressful week."
    assert evs[-1] == {"type": "done", "text": "", "risk": "none", "categories": [], "index": 1, "kept": False,
                       "action": "none", "cut": False}
    evs = _events(c.post("/api/chat", json={"session": SID, "message": "I want to end my life"}))
    assert evs[0]["type"] == "safety" and "988" in evs[0]["text"] and evs[-1]["risk"] == "high"
    assert c.post("/api/save", json={"session": SID}).json()["saved"]
    assert "988" in base.out.file("sessions.jsonl").read_text()


def test_model_markup_is_sent_as_data_not_html(make_cfg):
    c, _, _ = _client(make_cfg, '<img src=x onerror="alert(1)">')
    evs = _events(c.post("/api/chat", json={"session": SID, "message": "<b>hi</b>"}))
    assert evs[0]["text"] == '<img src=x onerror="alert(1)">'  # verbatim; the page renders with textContent
    js = (STATIC / "app.js").read_text()
    assert "innerHTML" not in js.replace("never innerHTML", "") and "textContent" in js


def test_token_required_when_configured(make_cfg):
    c, _, _ = _client(make_cfg, token="s3cret-token")
    body = {"session": SID, "message": "hello"}
    assert c.post("/api/chat", json=body).status_code == 401
    assert c.post("/api/chat", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/api/reset", json={"session": SID}).status_code == 401
    ok = c.post("/api/chat", json=body, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and _events(ok)[-1]["type"] == "done"
    assert c.get("/api/info").json()["token_required"] is True and c.get("/").status_code == 200


def test_bind_policy_refuses_public_host_without_token():
    with pytest.raises(UserError, match="needs --token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t0ken")
    check_bind("127.0.0.1", None)


def test_serve_cli_refuses_to_start_public_without_token(tmp_path):
    p = subprocess.run([sys.executable, "-m", "hybridtune.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert p.returncode == 2 and "needs --token" in p.stderr and "Traceback" not in p.stderr


def test_loopback_rejects_foreign_host_header(make_cfg):
    c, _, _ = _client(make_cfg)
    assert c.get("/", headers={"host": "evil.example"}).status_code == 400
    assert c.get("/", headers={"host": "127.0.0.1:8765"}).status_code == 200


@pytest.mark.parametrize("payload,status", [
    ({"session": SID, "message": "x" * 4001}, 413),
    ({"session": SID, "message": ""}, 400),
    ({"session": SID, "message": 12}, 400),
    ({"session": "../../etc", "message": "hi"}, 400),
    ({"message": "hi"}, 400),
])
def test_bad_requests(make_cfg, payload, status):
    c, _, _ = _client(make_cfg)
    r = c.post("/api/chat", json=payload)
    assert r.status_code == status and r.json()["error"]


def test_huge_and_invalid_bodies(make_cfg):
    c, _, _ = _client(make_cfg)
    r = c.post("/api/chat", content=b'{"session": "' + b"a" * 100_000 + b'"}', headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400

    def chunks():  # no content-length header: the limit is enforced while reading
        for _ in range(50):
            yield b"a" * 1000

    assert c.post("/api/chat", content=chunks(), headers={"content-type": "application/json"}).status_code == 413


def test_sessions_are_separate_and_evicted_without_writing_them(make_cfg):
    c, app, base = _client(make_cfg, max_sessions=2)
    for sid in ("session-aaaa", "session-bbbb", "session-cccc"):
        c.post("/api/chat", json={"session": sid, "message": f"hello from {sid}"})
    assert list(app.state.sessions) == ["session-bbbb", "session-cccc"]
    assert not base.out.file("sessions.jsonl").exists()  # nobody asked to save: eviction writes nothing
    eng, _ = app.state.sessions["session-cccc"]
    assert [m.content for m in eng.messages if m.role == "user"] == ["hello from session-cccc"]
    assert c.post("/api/reset", json={"session": "session-cccc"}).json() == {"ok": True} and not eng.messages


def test_page_info_names_the_variant_and_model_and_done_says_when_a_reply_was_cut(make_cfg):
    c, _, _ = _client(make_cfg, "I hear you. And then", "Fine.")
    assert c.get("/api/info").json()["who"] == "variant counselor, model smollm2"
    assert 'id="who"' in c.get("/").text
    done = [e for e in _events(c.post("/api/chat", json={"session": SID, "message": "hi"})) if e["type"] == "done"]
    assert done[0]["cut"] is True
    done = [e for e in _events(c.post("/api/chat", json={"session": SID, "message": "and?"})) if e["type"] == "done"]
    assert done[0]["cut"] is False
