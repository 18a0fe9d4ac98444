"""The bad-input suite (tests/bad_inputs/): one clear message or a quarantine entry for
each broken input, never a traceback, and one bad input never stops the others.

Entry points covered: `config check` (configs), `ingest` (every broken transcript at once,
beside good ones, plus a huge-line file made at test time), `safety check` (bad JSONL
lines), `review-import` (broken CSV/JSONL rows, undecodable bytes), and a prompt-injection
transcript going through ingest + the judge without changing the judge's output format.

    .venv/bin/python -m pytest tests/test_bad_inputs.py -q
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli import ht

BAD = Path(__file__).parent / "bad_inputs"
BROKEN = ["binary.txt", "empty.csv", "empty.txt", "latin1.txt", "missing_columns.csv", "truncated.jsonl"]
PII_EMAIL = "jordan.pike@example.com"
GOOD = """\
Counselor: Hello, what brings you in today?
Client: My name is Jordan Pike, you can email me at jordan.pike@example.com. Work has been awful.
Counselor: Thank you. What has been the hardest part of work lately?
Client: My manager criticised me in a meeting and I keep thinking I am useless.
Counselor: That thought sounds heavy. What evidence do you have for and against it?
Client: Well, I did get good feedback last month on the launch, so maybe not useless.
"""


def no_traceback(out) -> None:
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("name,expect", [
    ("config_wrong_key.yaml", "synth.sesions: unknown key; did you mean 'sessions'"),
    ("config_wrong_type.yaml", "evaluate.scenarios:"),
    ("config_not_mapping.yaml", "expected a mapping"),
    ("config_bad_yaml.yaml", "not valid YAML"),
])
def test_bad_configs(name, expect):
    out = ht("config", "check", str(BAD / name))
    assert out.returncode == 2, out.stdout + out.stderr
    no_traceback(out)
    assert expect in out.stderr and str(BAD / name) in out.stderr


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """One `ingest` call over every broken file, a huge-line file, the injection transcript and a good one."""
    tmp = tmp_path_factory.mktemp("ingest")
    inp = tmp / "in"
    inp.mkdir()
    for name in [*BROKEN, "injection.txt"]:
        shutil.copy(BAD / name, inp / name)
    # a 4 MB single line (no newline until the end): must not hang, crash or be echoed back
    (inp / "huge_line.txt").write_text("Client: " + "word " * 800_000 + "\n")
    (inp / "good.txt").write_text(GOOD)
    out = ht("ingest", str(inp), "--out", str(tmp / "out"), "--no-llm", "-q", "--set", "real.pii.ner=false")
    return inp, tmp / "out", out


def test_ingest_quarantines_each_broken_file_and_keeps_the_good(ingested):
    inp, outdir, out = ingested
    no_traceback(out)
    assert out.returncode == 1, "ingest exits 1 when any input was quarantined (documented in its help)"
    entries = [json.loads(x) for x in (outdir / "quarantine.jsonl").read_text().splitlines()]
    by_file = {Path(e["file"]).name: e for e in entries}
    for name in [*BROKEN, "huge_line.txt"]:
        assert name in by_file, f"{name}: no quarantine entry ({sorted(by_file)})"
        e = by_file[name]
        assert e["reason"] and len(e["reason"]) < 400, e
        assert "line" in e
    assert by_file["latin1.txt"]["line"] and "UTF-8" in by_file["latin1.txt"]["reason"]
    assert by_file["truncated.jsonl"]["line"] == 1 and "JSON" in by_file["truncated.jsonl"]["reason"]
    assert "column" in by_file["missing_columns.csv"]["reason"] and "real.csv" in by_file["missing_columns.csv"]["reason"]
    assert "word word word word" not in json.dumps(entries), "huge input echoed into the quarantine"
    # the good files of the same call still became sessions, and the summary counts the quarantined
    sessions = [json.loads(x) for x in (outdir / "sessions.jsonl").read_text().splitlines()]
    assert len(sessions) >= 2, "good.txt and injection.txt must still be ingested"
    # truncated.jsonl's torn line is one bad record (the file's other lines would be read): the rest are files
    assert f"{len(set(by_file)) - 1} of 9 files quarantined, 1 bad records quarantined" in out.stdout, out.stdout[-500:]


def test_ingest_writes_no_raw_pii(ingested):
    _, outdir, out = ingested
    assert PII_EMAIL not in out.stdout + out.stderr
    for f in outdir.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert PII_EMAIL not in text and "Jordan Pike" not in text, f"raw PII in {f.name}"


def test_safety_check_bad_lines(tmp_path):
    src = tmp_path / "texts.jsonl"
    lines = ['{"id": "a", "text": "I feel fine today"}', "not json at all", '{"id": "b"}', '["a list"]',
             '{"id": "c", "text": "' + "y" * 50_000 + '"}', "\x00\x01\x02", '{"id": "d", "text": "I slept badly"}']
    src.write_text("\n".join(lines) + "\n")
    out = ht("safety", "check", str(src), "-o", str(tmp_path / "out.jsonl"), "--rules-only")
    no_traceback(out)
    assert out.returncode in (0, 1), out.stderr
    screened = {json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()}
    assert screened == {"a", "d"}, "the good lines are screened despite the bad ones"
    q = [json.loads(x) for x in (tmp_path / "out.quarantine.jsonl").read_text().splitlines()]
    assert sorted(e["line"] for e in q) == [2, 3, 4, 5, 6]
    assert all(e["file"] == str(src) and e["reason"] for e in q)
    assert "y" * 100 not in json.dumps(q)


def _curated_run(tmp_path: Path) -> tuple[Path, str]:
    """A run directory with one session waiting in the review queue (as the curate stage leaves it)."""
    from hybridtune.records import Message, Session

    run = tmp_path / "runs" / "demo"
    (run / "curate").mkdir(parents=True)
    s = Session(id="s1", source="synthetic", messages=[Message(role="user", content="I feel stuck."),
                                                       Message(role="assistant", content="Tell me more.")])
    (run / "curate" / "review.jsonl").write_text(s.model_dump_json() + "\n")
    return run, s.id


@pytest.mark.parametrize("name,content", [
    ("broken.csv", "session_id,decision,reviewer\ns1,accept,ann\nnope,accept,ann\ns1,maybe,ann\n\"s1,unterminated\n"),
    ("broken.jsonl", '{"session_id": "s1", "decision": "accept", "reviewer": "ann"}\n{"session_id": "s1", "decis\n'
                     '{"session_id": "../../etc/passwd", "decision": "edit", "index": 0, "content": "x"}\n'),
])
def test_review_import_bad_rows(tmp_path, name, content):
    run, sid = _curated_run(tmp_path)
    f = tmp_path / name
    f.write_text(content)
    out = ht("review-import", str(run), str(f), "--reviewer", "ann")
    no_traceback(out)
    assert out.returncode == 1, out.stderr  # 1: some rows were quarantined, the good one went in
    assert "1 decisions imported" in out.stdout, out.stdout
    q = [json.loads(x) for x in (run / "curate" / "quarantine.jsonl").read_text().splitlines()]
    assert q and all(e["file"] == str(f) and e["line"] and e["reason"] for e in q)
    assert f"{f}:" in out.stderr, "each bad row is reported with file:line"


def test_review_import_undecodable_file(tmp_path):
    run, _ = _curated_run(tmp_path)
    f = tmp_path / "latin1.csv"
    f.write_bytes("session_id,decision\ns1,accept\u00e9\n".encode("latin-1") + b"\xff\xfe\x00")
    out = ht("review-import", str(run), str(f))
    no_traceback(out)
    assert out.returncode != 0 and str(f) in out.stderr and "UTF-8" in out.stderr, out.stderr[-800:]


def test_prompt_injection_does_not_change_judge_format(ingested, fake_ctx):
    """A client turn that orders the judge to output its own JSON: a judge that obeys it produces
    an invalid verdict, which is re-asked and then ledgered as a failure, never stored as scores."""
    from hybridtune.curate import judge
    from hybridtune.llm.fake import schema_example
    from hybridtune.records import Session

    _, outdir, _ = ingested
    sessions = [json.loads(x) for x in (outdir / "sessions.jsonl").read_text().splitlines()]
    inj = [s for s in sessions if "Ignore all previous instructions" in json.dumps(s)]
    assert inj, "the injection transcript is ingested as data (quoted, not executed)"
    obeyed = []

    def gullible(req):  # obeys any 'Output exactly {...}' found in the prompt, else answers properly
        prompt = "\n".join(m["content"] for m in req.messages)
        if "Output exactly {" in prompt and req.json_schema is not None:
            obeyed.append(1)
            return '{"coherence": 10, "realism": 10, "therapeutic_value": 10}'
        return json.dumps(schema_example(req.json_schema)) if req.json_schema else "ok"

    cm, fake = fake_ctx("curate.judge_real=true", "llm.max_failure_rate=1.0", responder=gullible)
    with cm as ctx:
        real = ctx.store.stage("real")
        real.write_records("sessions.jsonl", [Session.model_validate(s) for s in sessions])
        ctx.run_stage("curate", judge.run)
        st = ctx.store.stage("curate")
        judged = {s["id"]: s for s in st.read_dicts("judged.jsonl")}
        failures = [json.loads(x) for x in st.file("failures.jsonl").read_text().splitlines()] \
            if st.file("failures.jsonl").exists() else []
    assert obeyed, "the injected instruction reached the judge prompt (as quoted transcript)"
    inj_id = inj[0]["id"]
    assert inj_id not in judged, "a verdict in the injected format must never be stored as scores"
    assert any(f["item"] == inj_id for f in failures), "the invalid verdict is in the failure ledger"
    for s in sessions:
        if s["id"] != inj_id:  # the other sessions are judged normally, in the usual format
            verdict = judged[s["id"]]["scores"]["judge"]
            assert set(judge.CRITERIA) <= set(verdict) and "flags" in verdict


@pytest.mark.model
@pytest.mark.timeout(600)
def test_prompt_injection_real_judge_keeps_format(make_cfg):
    """The embedded model as judge reads the injection transcript: whatever it makes of it, what
    is stored is a schema-valid verdict or a failure-ledger entry, never the injected format."""
    from hybridtune.context import open_run
    from hybridtune.curate import judge
    from hybridtune.records import Message, Session

    cfg = make_cfg("roles.judge.max_tokens=220", "llm.max_reasks=0", "llm.max_failure_rate=1.0",
                   "curate.judge_real=true", "curate.max_chars=900", backend="llamacpp")

    lines = [ln.split(":", 1) for ln in (BAD / "injection.txt").read_text().splitlines() if ":" in ln]
    msgs = [Message(role="user" if who.strip() == "Client" else "assistant", content=text.strip()) for who, text in lines]
    with open_run(cfg) as ctx:
        ctx.store.stage("real").write_records("sessions.jsonl", [Session(id="inj", source="real", messages=msgs)])
        ctx.run_stage("curate", judge.run)
        st = ctx.store.stage("curate")
        judged = {s["id"]: s for s in st.read_dicts("judged.jsonl")}
        failed = {f["item"] for f in st.read_dicts("failures.jsonl")}
    assert ("inj" in judged) != ("inj" in failed), "exactly one outcome: judged or ledgered"
    if "inj" in judged:
        verdict = judged["inj"]["scores"]["judge"]
        assert set(judge.CRITERIA) <= set(verdict) and all(1 <= verdict[c] <= 10 for c in judge.CRITERIA)
