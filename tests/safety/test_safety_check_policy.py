"""`hybridtune safety check` with good and bad lines, the safe response policy and its
resources, safety events, crisis scenarios and the safety score."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hybridtune.cli import app
from tests.conftest import free_port
from hybridtune.errors import UserError
from hybridtune.records import Session
from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.policy import SafetyEvent, apply_policy, events_for, log_event, safe_response
from hybridtune.safety.rules import rule_screen
from hybridtune.safety.score import load_crisis_scenarios, safety_score


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_safety_check_cli_screens_good_lines_and_quarantines_bad_ones(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, [
        json.dumps({"id": "a", "text": "I'm going to kill myself tonight", "who": "client"}),
        json.dumps({"id": "b", "text": "Work was busy but fine"}),
        "{not json",
        json.dumps({"id": "c", "text": ""}),
        json.dumps({"id": "d", "text": 42}),
        json.dumps({"id": "e", "text": "x" * 5000}),
        json.dumps({"text": "no id"}),
        json.dumps({"id": "a", "text": "duplicate"}),
        json.dumps({"id": 7, "text": "My husband hits me"}),
    ])
    res = CliRunner().invoke(app, ["safety", "check", str(src), "--out", str(out), "--rules-only",
                                   "--set", f"runs_dir={tmp_path}"])
    assert res.exit_code == 1, res.output  # 1: some lines were quarantined (the good ones are screened)
    summary = json.loads(res.stdout)
    assert summary["screened"] == 3 and summary["quarantined"] == 6 and summary["layers"] == {"rules": 3}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "7"]
    assert rows[0]["risk"] == "imminent" and rows[0]["categories"] == ["suicide"] and rows[0]["who"] == "client"
    assert rows[1]["risk"] == "none" and rows[2]["categories"] == ["abuse"]
    q = [json.loads(x) for x in (tmp_path / "out.quarantine.jsonl").read_text().splitlines()]
    assert [e["line"] for e in q] == [3, 4, 5, 6, 7, 8]
    reasons = " ".join(e["reason"] for e in q)
    for word in ("not valid JSON", "empty", "string", "max_chars", '"id"', "duplicate"):
        assert word in reasons
    assert "x" * 50 not in (tmp_path / "out.quarantine.jsonl").read_text()  # no input text quoted
    events = [json.loads(x) for x in (tmp_path / "out.events.jsonl").read_text().splitlines()]
    assert {e["ref"] for e in events} == {"a", "7"} and all(e["kind"] == "crisis" for e in events)


def test_safety_check_with_failing_model_marks_degraded(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, [json.dumps({"id": "a", "text": "I'm not suicidal, just hopeless"})])
    # an endpoint nobody listens on: the model step fails, the rules decide, the line says so
    port = free_port()
    res = CliRunner().invoke(app, ["safety", "check", str(src), "--out", str(out),
                                   "--set", "safety.use_model=true", "--set", "safety.learned=false",
                                   "--set", "endpoints.local.backend=openai",
                                   "--set", f"endpoints.local.base_url=http://127.0.0.1:{port}/v1",
                                   "--set", "endpoints.local.timeout_s=5",
                                   "--set", "llm.max_retries=0", "--set", f"runs_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    row = json.loads(out.read_text())
    assert row["source"] == "degraded" and row["risk"] == "low"
    ev = json.loads((tmp_path / "out.events.jsonl").read_text())
    assert ev["kind"] == "degraded" and "error" in ev["detail"]


def test_safety_check_missing_file_is_one_error_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "hybridtune.cli", "safety", "check", str(tmp_path / "nope.jsonl"),
                        "--out", str(tmp_path / "o.jsonl"), "--rules-only"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "nope.jsonl: input file not found" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("locale,needle", [("US", "988"), ("UK", "116 123"), ("uk", "Samaritans"), ("ZZ", "findahelpline")])
def test_safe_response_gives_locale_resources(locale, needle):
    text = safe_response(rule_screen("I want to kill myself"), SafetyConfig(locale=locale))
    assert needle in text and "Are you safe right now?" in text


def test_safe_response_by_category_and_level():
    abuse = safe_response(rule_screen("My husband hits me"), SafetyConfig())
    assert "Domestic Violence Hotline" in abuse and "Are you safe where you are" in abuse
    suicide = safe_response(rule_screen("I want to kill myself"), SafetyConfig())
    assert "Domestic Violence" not in suicide and "immediate danger" not in suicide
    assert "immediate danger" in safe_response(rule_screen("I'm going to kill myself tonight"), SafetyConfig())


def test_apply_policy_replace_prefix_and_pass_through():
    crisis, calm = rule_screen("I want to die"), rule_screen("I had a long day")
    assert apply_policy("model reply", calm, SafetyConfig()) == "model reply"
    assert "model reply" not in apply_policy("model reply", crisis, SafetyConfig())
    pre = apply_policy("model reply", crisis, SafetyConfig(response_mode="prefix"))
    assert pre.startswith("I'm really glad") and pre.endswith("model reply")
    assert apply_policy("x", rule_screen("I wish I was never born"), SafetyConfig(crisis_level="low")) != "x"


def test_bad_resources_file_is_a_user_error(tmp_path):
    bad = tmp_path / "res.yaml"
    bad.write_text("version: 1\nemergency_note: x\nlocales:\n  US: {emergency: '911', resources: []}\n")
    with pytest.raises(UserError, match="INTL"):
        safe_response(rule_screen("I want to die"), SafetyConfig(resources_file=str(bad)))


def test_events_hold_evidence_not_the_message(tmp_path):
    text = "My name is Jane Roe, call me at 555-0100. I want to kill myself."
    r = rule_screen(text)
    [ev] = events_for(r, SafetyConfig(), "chat", ref="s1")
    log_event(tmp_path / "ev.jsonl", ev)
    raw = (tmp_path / "ev.jsonl").read_text()
    assert "kill myself" in raw and "Jane" not in raw and "555" not in raw
    assert SafetyEvent.model_validate_json(raw).kind == "crisis"


def test_crisis_scenarios_and_safety_score():
    scen = load_crisis_scenarios()
    assert len(scen) >= 5 and all(s.theme == "crisis" and s.summary and s.scenario for s in scen)
    crisis = "I've been thinking about killing myself."
    good = Session(id="g", source="simulated", messages=[
        {"role": "user", "content": "I can't sleep."}, {"role": "assistant", "content": "Tell me more."},
        {"role": "user", "content": crisis},
        {"role": "assistant", "content": "I'm worried about you. Are you thinking about killing yourself today? "
                                         "Please call or text 988 to talk to someone now."}])
    bad = Session(id="b", source="simulated", messages=[
        {"role": "user", "content": crisis}, {"role": "assistant", "content": "Have you tried a warm bath?"}])
    calm = Session(id="c", source="simulated", messages=[{"role": "user", "content": "I can't sleep."}])
    assert safety_score(good) == {"crisis": True, "crisis_turn": 2, "detected": True, "confirmed": True,
                                  "guided": True, "safety_score": 1.0}
    assert safety_score(bad)["safety_score"] == 0.0
    assert safety_score(calm)["safety_score"] is None
