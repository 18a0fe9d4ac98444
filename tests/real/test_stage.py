"""The real stage end to end with the fake backend: outputs, PII, quarantine, annotation, resume, CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, shared_data
from hybridtune.real.config import PiiConfig
from hybridtune.real.pii import Scrubber
from hybridtune.real.stage import run
from hybridtune.records import Message, QuarantineEntry, Session

RAW_PII = ["Daniel", "Karen Whitfield", "Whitfield", "415-555-0198", "priya.nair@example-mail.com", "Olivia", "Dr. Hamid"]


@pytest.fixture(scope="module")
def scrubber():
    return Scrubber(PiiConfig())


def test_scrub_session_consistent_surrogates(scrubber):
    turns = ["Hi, I'm Sarah Jones and my email is sarah.jones@gmail.com.", "Sarah, did Tom call you on 212-555-0147?",
             "Yes, Tom called. Ms. Jones is fine."]
    out, counts = scrubber.scrub_session(turns, key="s1")
    text = " ".join(out)
    for raw in ("Sarah", "Jones", "Tom", "sarah.jones@gmail.com", "212-555-0147"):
        assert raw not in text
    first = out[0].split("I'm ")[1].split(" and")[0]  # "Fake Surname"
    given, surname = first.split()
    assert out[1].startswith(given + ",") and f"Ms. {surname}" in out[2]  # same person -> same surrogate
    assert counts["PERSON"] >= 4 and counts["EMAIL_ADDRESS"] == 1 and counts["PHONE_NUMBER"] == 1
    again, _ = scrubber.scrub_session(turns, key="s1")
    assert again == out  # deterministic per session


def test_placeholder_mode():
    s = Scrubber(PiiConfig(mode="placeholder"))
    assert s.scrub_text("You can write to bob.smith@gmail.com or call 212-555-0147") == \
        "You can write to [EMAIL_ADDRESS] or call [PHONE_NUMBER]"


def _inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    shutil.copytree(ROOT / "data" / "demo", d)
    (d / "empty.txt").write_text("")
    (d / "broken.json").write_text('{"messages": [')
    (d / "short.txt").write_text("T: Hi, what brings you here today?\nP: Hello there.\n")
    (d / "copy.txt").write_text((d / "grief.txt").read_text())  # an exact duplicate session
    return d


def test_stage_outputs_quarantine_and_no_raw_pii(fake_ctx, tmp_path):
    d = _inputs(tmp_path)
    ctx_cm, fake = fake_ctx(f"real.inputs=[{d}]", "real.annotate.max_turns_per_session=2")
    with ctx_cm as ctx:
        summary = ctx.run_stage("real", run)
    st = ctx.store.stage("real")
    sessions = list(st.read("sessions.jsonl", Session))
    q = list(st.read("quarantine.jsonl", QuarantineEntry))
    assert summary["files_quarantined"] == 2 and summary["sessions_in"] == 9
    assert {Path(e.file).name for e in q} == {"empty.txt", "broken.json", "short.txt"}
    assert any(e.line == 1 and "truncated" in e.reason for e in q)
    assert len(sessions) == 7 and all(s.source == "real" for s in sessions)
    report = st.read_json("summary.json")
    assert report["filters"] == {"too_few_turns": 1} and report["duplicates"]["exact"] == 1
    assert report["pii"]["PERSON"] >= 4 and report["pii"]["PHONE_NUMBER"] == 1
    assert "Dropped by filters" in st.file("report.md").read_text()
    # annotations: two turns per session, ids from the domain taxonomies (fake answers the first enum value)
    assert all(len(s.annotations) == 2 for s in sessions)
    assert sessions[0].annotations[0].techniques[0] == ctx.domain.techniques[0].id
    assert all(s.meta["safety"]["risk"] in ("none", "low", "high", "imminent", "unscreened") for s in sessions)
    vtt = next(s for s in sessions if s.meta["format"] == "vtt")
    assert vtt.meta["attribution"]["confidence"] > 0.5 and vtt.messages[0].role == "assistant"
    samples = [json.loads(x) for x in st.file("samples.jsonl").read_text().splitlines()]
    assert {x["kind"] for x in samples} == {"session", "qa"}
    everything = "".join(p.read_text(errors="replace") for p in st.path.iterdir() if p.is_file() and p.suffix != ".sqlite")
    for raw in RAW_PII:
        assert raw not in everything, raw


def test_resume_redoes_only_failed_annotations(fake_ctx, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ROOT / "data" / "demo" / "grief.txt", d)
    over = [f"real.inputs=[{d}]", "real.annotate.max_turns_per_session=4", "llm.max_failure_rate=1.0", "llm.cache=false",
            "real.pii.ner=false"]
    ctx_cm, fake = fake_ctx(*over, replies=[RuntimeError("boom")])  # the first turn fails once
    with ctx_cm as ctx:
        ctx.run_stage("real", run)
    st = ctx.store.stage("real")
    assert len(st.ids("annotations.jsonl")) == 3 and st.file("failures.jsonl").exists()
    st.reset()
    ctx_cm, fake2 = fake_ctx(*over)
    with ctx_cm as ctx:
        ctx.run_stage("real", run)
    assert fake2.calls == 1  # only the failed turn is asked again
    (s,) = st.read("sessions.jsonl", Session)
    assert len(s.annotations) == 4


def test_no_llm_makes_no_calls(fake_ctx, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ROOT / "data" / "demo" / "sleep.vtt", d)
    ctx_cm, fake = fake_ctx(f"real.inputs=[{d}]", "real.llm=false", "real.pii.ner=false")
    with ctx_cm as ctx:
        ctx.run_stage("real", run)
    assert fake.calls == 0
    (s,) = ctx.store.stage("real").read("sessions.jsonl", Session)
    assert s.annotations == [] and s.meta["attribution"]["method"] == "words"


def test_unsure_captions_ask_the_annotator(fake_ctx, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ROOT / "data" / "demo" / "sleep.vtt", d)
    ctx_cm, fake = fake_ctx(f"real.inputs=[{d}]", "real.attribution.llm_below=1.0", "real.annotate.enabled=false",
                            "real.pii.ner=false", replies=['{"counselor": "S2"}'])
    with ctx_cm as ctx:
        ctx.run_stage("real", run)
    (s,) = ctx.store.stage("real").read("sessions.jsonl", Session)
    assert s.meta["attribution"]["llm"] == "flipped" and s.messages[0].role == "user"
    assert fake.calls == 1


def test_llm_quality_filter(fake_ctx, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for f in ("grief.txt", "low_mood.txt"):
        shutil.copy(ROOT / "data" / "demo" / f, d)
    ctx_cm, fake = fake_ctx(f"real.inputs=[{d}]", "real.filters.llm_quality_min=3", "real.annotate.enabled=false",
                            "real.pii.ner=false", replies=['{"score": 1, "reason": "off topic"}', '{"score": 4, "reason": "ok"}'])
    with ctx_cm as ctx:
        summary = ctx.run_stage("real", run)
    assert summary["dropped_llm_quality"] == 1 and summary["sessions_out"] == 1


def test_cli_ingest_exit_status_and_outputs(tmp_path):
    from typer.testing import CliRunner

    from hybridtune.cli import app

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ROOT / "data" / "demo" / "panic_chat.jsonl", d)
    (d / "bin.txt").write_bytes(b"\x00\x01binary")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["ingest", str(d), "--out", str(out), "--no-llm", "-q", "--set", "real.pii.ner=false"])
    assert r.exit_code == 1, r.output
    assert "1 of 2 files quarantined" in r.output
    assert {p.name for p in out.iterdir()} >= {"sessions.jsonl", "samples.jsonl", "quarantine.jsonl", "summary.json", "report.md"}


def test_annomi_subset(fake_ctx, tmp_path):
    src = shared_data("annomi", "AnnoMI-simple.csv")
    p = tmp_path / "annomi.csv"
    p.write_text("\n".join(src.read_text(encoding="utf-8").splitlines()[:150]) + "\n", encoding="utf-8")
    ctx_cm, _ = fake_ctx(f"real.inputs=[{p}]", "real.llm=false")
    with ctx_cm as ctx:
        summary = ctx.run_stage("real", run)
    assert summary["sessions_in"] >= 2 and summary["sessions_out"] >= 1 and summary["samples_out"] > 10
    s = next(ctx.store.stage("real").read("sessions.jsonl", Session))
    assert s.meta["format"] == "annomi" and s.messages[0].role == "assistant"


def test_crisis_content_flagged_for_review(fake_ctx, tmp_path):
    pytest.importorskip("hybridtune.safety.rules")
    d = tmp_path / "in"
    d.mkdir()
    (d / "c.txt").write_text(
        "Therapist: How have things been since last week?\nClient: Worse. Sometimes I think I want to kill myself.\n"
        "Therapist: Thank you for telling me. Are you safe right now?\nClient: I think so, I have not made a plan.\n")
    ctx_cm, _ = fake_ctx(f"real.inputs=[{d}]", "real.llm=false", "real.pii.ner=false")
    with ctx_cm as ctx:
        ctx.run_stage("real", run)
    (s,) = ctx.store.stage("real").read("sessions.jsonl", Session)
    assert s.meta["safety"]["risk"] in ("high", "imminent") and s.meta["safety"]["review"] is True
    assert s.meta["safety"]["action"] == "crisis_reply"
    assert ctx.store.stage("real").read_json("summary.json")["safety"]


def test_demo_transcripts_are_not_crisis_sessions(fake_ctx, tmp_path):
    """configs/demo.yaml's inputs through the real screen (rules + learned layer on CPU) and policy: a turn
    only the learned layer flags is recorded as a check-in; none is a crisis session sent to review."""
    ctx_cm, _ = fake_ctx(f"real.inputs=[{ROOT / 'data' / 'demo'}]", "real.llm=false", "real.pii.ner=false")
    with ctx_cm as ctx:
        ctx.run_stage("real", run)
    sessions = list(ctx.store.stage("real").read("sessions.jsonl", Session))
    assert len(sessions) == 7
    safety = {s.meta["file"]: s.meta["safety"] for s in sessions}
    assert {f: m["review"] for f, m in safety.items() if m["review"]} == {}
    assert all(m["action"] in ("none", "check_in") for m in safety.values())
    # a check-in is recorded with its turn, not lost (which files get one is bench/safety_screen.py's count)
    assert all(set(m["action_turns"].values()) <= {"check_in"} for m in safety.values())
    assert all(bool(m["action_turns"]) == (m["action"] == "check_in") for m in safety.values())


def test_drops_are_typed_and_counted_by_kind(fake_ctx, tmp_path, monkeypatch):
    """Every dropped session has a DropKind: filters are counted by kind, duplicates are not quarantined,
    and only bad input (an over-long turn, a session a library breaks on) counts as a quarantined record."""
    import hybridtune.real.stage as stage
    from hybridtune.real.filters import DropKind, first_failure

    d = tmp_path / "in"
    d.mkdir()
    good = (ROOT / "data" / "demo" / "grief.txt").read_text()
    (d / "a.txt").write_text(good)
    (d / "b_copy.txt").write_text(good)
    (d / "c_short.txt").write_text("T: Hi, what brings you here today?\nP: Hello there.\n")
    (d / "d_long.txt").write_text(good + "Counselor: " + " ".join(f"word{i}" for i in range(600)) + "\n")
    (d / "e_boom.txt").write_text(good.replace("\n", " BOOM\n", 1))
    real_clean = stage.clean_turns

    def clean_or_break(turns, cfg):  # a library that breaks on one session
        if any("BOOM" in t.text for t in turns):
            raise ValueError("library bug")
        return real_clean(turns, cfg)

    monkeypatch.setattr(stage, "clean_turns", clean_or_break)
    ctx_cm, fake = fake_ctx(f"real.inputs=[{d}]", "real.llm=false", "real.pii.ner=false",
                            "real.filters.max_turn_chars=3000")
    with ctx_cm as ctx:
        summary = ctx.run_stage("real", run)
    st = ctx.store.stage("real")
    report = st.read_json("summary.json")
    assert report["filters"] == {"too_few_turns": 1, "turn_too_long": 1, "failed": 1}
    assert set(report["filters"]) <= {k.value for k in DropKind}
    assert summary["records_quarantined"] == 2 and summary["files_quarantined"] == 0  # too_few_turns is a filter
    assert summary["after_filters"] == 2 and summary["after_dedup"] == 1  # the copy passed the filters, then dedup
    reasons = sorted(e["reason"].split(" dropped: ")[1].split(":")[0] for e in st.read_dicts("quarantine.jsonl"))
    assert reasons == ["failed", "too_few_turns", "turn_too_long"]
    drop = first_failure([Message(role="assistant", content="Hi."), Message(role="user", content="Hello.")],
                         ctx.cfg.real.filters)
    assert drop.kind is DropKind.TOO_FEW_TURNS and not drop.bad_record and drop.reason.startswith("too_few_turns")
