"""Secrets and exposure: an API key in the environment appears in no file a run writes and in
no output or error; the web apps (review, serve) refuse to listen beyond loopback without a
token and refuse unauthenticated API calls when one is set; review edits cannot write
outside the run directory.

    .venv/bin/python -m pytest tests/hardening/test_secrets.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hybridtune.devtools.mock_openai import MockServer
from tests.hardening.common import (
    AFTER_TRAIN, BEFORE_TRAIN, hybridtune, register_fake_models, run_args, text_files, tiny_overrides,
)

KEY = "sk-proj-HYBRIDTUNE-CANARY-7f3a9c2e1b"
ENV = {"OPENAI_API_KEY": KEY, "HYBRIDTUNE_TEST_KEY": KEY}


def _assert_no_key(where: str, data: bytes | str) -> None:
    blob = data if isinstance(data, bytes) else data.encode()
    assert KEY.encode() not in blob and b"CANARY-7f3a" not in blob, f"API key leaked into {where}"


@pytest.mark.timeout(400)
def test_api_key_in_no_artifact_log_or_error(tmp_path):
    outputs = []
    with MockServer() as url:
        sets = [*tiny_overrides(tmp_path, tmp_path / "runs"), "real.pii.enabled=false",
                "endpoints.local.backend=openai", f"endpoints.local.base_url={url}", "endpoints.local.model=mock",
                "endpoints.local.api_key_env=OPENAI_API_KEY"]
        for stages in (BEFORE_TRAIN, AFTER_TRAIN):
            if stages is AFTER_TRAIN:
                register_fake_models(tmp_path / "runs" / "demo", backend="openai")
            out = hybridtune(run_args(sets, stages), env=ENV)
            outputs.append(out)
            assert out.returncode == 0, out.stderr[-2000:]
        outputs.append(hybridtune(["config", "check", "configs/demo.yaml", *sum((["--set", s] for s in sets), [])], env=ENV))
        outputs.append(hybridtune(["ask", "hello", "--role", "judge", "-c", "configs/demo.yaml",
                                   *sum((["--set", s] for s in sets), [])], env=ENV))
    # errors that involve the endpoint: unreachable server, and the key env var named but unset
    dead = [s for s in sets if not s.startswith("endpoints.local.base_url")] + [
        "endpoints.local.base_url=http://127.0.0.1:9/v1", "endpoints.local.timeout_s=1", "llm.max_retries=0",
        f"runs_dir={tmp_path / 'dead'}"]
    outputs.append(hybridtune(run_args(dead, ["personas"]), env=ENV, timeout=120))
    assert outputs[-1].returncode != 0
    outputs.append(hybridtune(run_args([*sets, "endpoints.local.api_key_env=HYBRIDTUNE_TEST_KEY"], ["personas"]),
                              env={**ENV, "HYBRIDTUNE_TEST_KEY": ""}))
    for i, out in enumerate(outputs):
        _assert_no_key(f"stdout of command {i}", out.stdout)
        _assert_no_key(f"stderr of command {i}", out.stderr)
        assert "Traceback" not in out.stderr, out.stderr[-1500:]
    files = list(text_files(tmp_path))
    assert len(files) > 30 and any(f.name == "cache.sqlite" for f in files)
    for f in files:
        _assert_no_key(str(f.relative_to(tmp_path)), f.read_bytes())
    report = tmp_path / "runs" / "demo" / "report" / "report.html"
    assert report.exists()


# -- web apps -----------------------------------------------------------------------------

def _review_run(tmp_path: Path) -> Path:
    from hybridtune.records import Message, Session

    run = tmp_path / "runs" / "demo"
    (run / "curate").mkdir(parents=True)
    s = Session(id="s1", source="synthetic", messages=[Message(role="user", content="I feel stuck."),
                                                       Message(role="assistant", content="Tell me more.")])
    (run / "curate" / "review.jsonl").write_text(s.model_dump_json() + "\n")
    return run


@pytest.mark.parametrize("verb", [["review", "{run}"], ["serve", "-c", "configs/demo.yaml"]])
def test_apps_refuse_public_bind_without_token(tmp_path, verb):
    run = _review_run(tmp_path)
    args = [a.format(run=run) for a in verb]
    out = hybridtune([*args, "--host", "0.0.0.0", "--port", "1"], env={"HYBRIDTUNE_REVIEW_TOKEN": "",
                                                                     "HYBRIDTUNE_SERVE_TOKEN": ""}, timeout=60)
    assert out.returncode == 2, out.stderr[-1500:]
    assert "needs --token" in out.stderr and "Traceback" not in out.stderr


def test_review_app_token_and_path_traversal(tmp_path):
    from hybridtune.curate.review.app import create_app

    run = _review_run(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    c = TestClient(create_app(run, token="t0ken-long-secret", reviewer="ann"), base_url="http://127.0.0.1")
    assert c.get("/api/sessions").status_code == 401
    assert c.get("/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/api/sessions/s1/decision", json={"action": "accept", "reviewer": "x"}).status_code == 401
    h = {"Authorization": "Bearer t0ken-long-secret"}
    assert c.get("/api/sessions", headers=h).status_code == 200
    edit = {"action": "edit", "reviewer": "ann", "index": 0, "content": "pwned"}
    for sid in ["../../escape", "..%2F..%2Fescape", "%2e%2e%2fescape", "/etc/passwd", "s1/../../escape",
                "..\\..\\escape", "s1%00.txt"]:
        r = c.post(f"/api/sessions/{sid}/decision", json=edit, headers=h)
        assert r.status_code in (404, 405, 422), (sid, r.status_code)
    for name in ["../app.py", "..%2F__init__.py", "%2e%2e/app.py"]:
        assert c.get(f"/static/{name}").status_code == 404
    # a legitimate edit lands inside the run's curate folder, and nothing was created elsewhere
    assert c.post("/api/sessions/s1/decision", json=edit, headers=h).status_code == 200
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(run / "curate" in p.parents for p in created), created
    assert not list(tmp_path.parent.glob("escape*"))
    decisions = [json.loads(x) for x in (run / "curate" / "decisions.jsonl").read_text().splitlines()]
    assert [d["session_id"] for d in decisions] == ["s1"]


def test_serve_app_refuses_unauthenticated_when_token_set():
    from hybridtune.app.web import create_app

    c = TestClient(create_app(lambda: None, token="s3cret-token-value"), base_url="http://127.0.0.1")
    r = c.post("/api/chat", json={"message": "hi"})
    assert r.status_code == 401
    assert "s3cret" not in r.text
