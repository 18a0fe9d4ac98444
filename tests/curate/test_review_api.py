"""Review app at the API level: list + filters, accept/reject/edit appended at once and
surviving a new app instance, validation, token, bind rule, escaping, CSV/JSONL export-import."""
from __future__ import annotations

import csv
import json

import pytest
from fastapi.testclient import TestClient

from hybridtune.curate.decisions import Decision, effective, export_queue, import_decisions
from hybridtune.curate.review.app import STATIC, check_bind, create_app
from hybridtune.errors import UserError
from hybridtune.store import StageDir

from .helpers import session, write_curated


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "runs" / "demo"
    write_curated(d, selected=[session(1, mean=8)],
                  review=[session(2, mean=5.5, techniques=("exposure",)), session(3, mean=9, flags=("repetition",)),
                          session(4, words="<script>alert(1)</script>", mean=5)],
                  rejected=[session(5, mean=2)])
    return d


def test_list_filters_and_detail(run_dir):
    c = TestClient(create_app(run_dir, reviewer="ana"), base_url="http://127.0.0.1")
    assert len(c.get("/api/sessions").json()) == 3  # the queue: review status, no decision yet
    assert [r["id"] for r in c.get("/api/sessions", params={"flag": "repetition"}).json()] == [session(3).id]
    assert [r["id"] for r in c.get("/api/sessions", params={"technique": "exposure"}).json()] == [session(2).id]
    assert len(c.get("/api/sessions", params={"status": "all", "min_score": 5.5}).json()) == 3
    d = c.get(f"/api/sessions/{session(4).id}").json()
    assert d["messages"][0]["content"].count("<script>") == 1  # returned as data; the page renders text only
    assert c.get("/api/sessions/../../etc/passwd").status_code == 404
    assert c.get("/api/meta").json()["reviewer"] == "ana"


def test_decisions_persist_across_app_instances(run_dir):
    sid = session(2).id
    c = TestClient(create_app(run_dir), base_url="http://127.0.0.1")
    r = c.post(f"/api/sessions/{sid}/decision", json={"action": "edit", "index": 1, "content": "Better reply.", "reviewer": "ana"})
    assert r.status_code == 200 and r.json()["messages"][1]["content"] == "Better reply."
    assert c.post(f"/api/sessions/{sid}/decision", json={"action": "accept", "reviewer": "ana"}).json()["verdict"] == "accept"
    again = TestClient(create_app(run_dir), base_url="http://127.0.0.1")  # a restarted server reads the same append-only file
    d = again.get(f"/api/sessions/{sid}").json()
    assert d["verdict"] == "accept" and d["messages"][1]["edited"] and [h["action"] for h in d["history"]] == ["edit", "accept"]
    assert sid not in [r["id"] for r in again.get("/api/sessions").json()]  # leaves the to-review queue
    st = StageDir(run_dir / "curate", "curate")
    decisions = list(st.read("decisions.jsonl", Decision))
    assert [d.reviewer for d in decisions] == ["ana", "ana"] and all(d.time for d in decisions)
    used = {s.id: s for s in effective(st)}
    assert used[sid].messages[1].content == "Better reply." and session(3).id not in used


@pytest.mark.parametrize("body", [
    {"action": "edit", "index": 99, "content": "x", "reviewer": "ana"},
    {"action": "edit", "index": 0, "content": "  ", "reviewer": "ana"},
    {"action": "delete", "reviewer": "ana"},
    {"action": "accept", "reviewer": ""},
])
def test_bad_decisions_are_refused_and_not_stored(run_dir, body):
    c = TestClient(create_app(run_dir), base_url="http://127.0.0.1")
    assert c.post(f"/api/sessions/{session(2).id}/decision", json=body).status_code == 422
    assert not (run_dir / "curate" / "decisions.jsonl").exists()


def test_token_required_beyond_loopback(run_dir):
    with pytest.raises(UserError, match="needs --token"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    c = TestClient(create_app(run_dir, token="s3cret-token"), base_url="http://127.0.0.1")
    assert c.get("/api/sessions").status_code == 401
    assert c.get("/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/sessions", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    page = c.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/static/..%2Fapp.py").status_code == 404


def test_page_never_inserts_html():
    js = (STATIC / "app.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


def test_csv_export_import_roundtrip_with_bad_rows(run_dir, tmp_path):
    st = StageDir(run_dir / "curate", "curate")
    out = tmp_path / "queue.csv"
    assert export_queue(st, out) == 3
    rows = list(csv.DictReader(out.open()))
    rows[0]["decision"], rows[1]["decision"] = "accept", "maybe"
    rows.append({**rows[2], "session_id": "nope", "decision": "reject"})
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    n, bad = import_decisions(st, out, reviewer="bob")
    assert n == 1 and [q.line for q in bad] == [3, 5]
    assert "unknown session_id" in bad[1].reason and str(out) == bad[0].file
    assert {s.id for s in effective(st)} == {session(1).id, rows[0]["session_id"]}


def test_jsonl_export_has_dialogue_and_import_edits(run_dir, tmp_path):
    st = StageDir(run_dir / "curate", "curate")
    out = tmp_path / "queue.jsonl"
    export_queue(st, out)
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][0]["role"] == "user"
    edits = tmp_path / "edits.jsonl"
    edits.write_text(json.dumps({"session_id": first["session_id"], "action": "edit", "index": 1, "content": "Edited.",
                                 "reviewer": "cy"}) + "\n{broken\n")
    n, bad = import_decisions(st, edits)
    assert n == 1 and bad[0].line == 2
    with pytest.raises(UserError, match=r"\.txt: unknown import format"):
        import_decisions(st, tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("") is not None else None
