"""Hostile or careless use of the command line, each written as the attack or the mistake, through
the real CLI (subprocesses): run names that escape, over-long turns, two ingests at once, a
killed ingest, YAML bombs and duplicate keys, bad lines in `safety check` and `review-import`,
keys where they do not belong, bad values and paths. The web side is in test_web_guard.py and
test_cross_origin_browser.py; the table in docs/hardening.md maps each case to its test.

    .venv/bin/python -m pytest tests/hardening/test_cli_misuse.py -q
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cli import ht

DEMO = ROOT / "data" / "demo"
KEY = "sk-proj-Zx81CanaryKeyDoNotLeak4455667788"
GOOD = ("Counselor: Hello, what brings you in today?\nClient: Work has been awful and I sleep badly.\n"
        "Counselor: What has been the hardest part of work lately?\nClient: My manager criticised me in a meeting.\n"
        "Counselor: That sounds heavy. What went through your mind then?\nClient: That I am useless, I guess.\n")


def no_traceback(out) -> None:
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-2000:]


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


# -- 3. run names -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "../escaped", ".hidden", "a/b", "-rf"])
def test_run_name_cannot_escape_runs_dir(tmp_path, name):
    work = tmp_path / "work"
    (work / "runs").mkdir(parents=True)
    (work / "probe.yaml").write_text("endpoints: {local: {backend: fake}}\n")  # default runs_dir: ./runs
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = ht("export", "-c", "probe.yaml", "--set", f"name={name}", cwd=work)
    no_traceback(out)
    assert out.returncode == 2 and "not a plain name" in out.stderr, out.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


# -- 4. a turn over spaCy's limit ---------------------------------------------------------------------
def test_one_huge_turn_is_quarantined_and_the_other_files_ingested(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "good.txt").write_text(GOOD)
    (inp / "huge_turn.txt").write_text(GOOD + "Counselor: " + "words and more words " * 55_000 + "\n")
    out = ht("ingest", str(inp), "--out", str(tmp_path / "out"), "--no-llm", "-q")
    no_traceback(out)
    assert out.returncode == 1, out.stderr[-1500:]  # 1: something was quarantined
    assert len(_jsonl(tmp_path / "out" / "sessions.jsonl")) == 1
    q = _jsonl(tmp_path / "out" / "quarantine.jsonl")
    assert [e["file"] for e in q] == [str(inp / "huge_turn.txt")] and "turn_too_long" in q[0]["reason"]
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


# -- 5. ingest --out: lock, own outputs, resume -------------------------------------------------------------
def test_ingest_takes_the_run_lock(tmp_path):
    from hybridtune.store import RunStore

    out_dir = tmp_path / "out"
    with RunStore(out_dir).locked():  # another ingest (or a run) is writing this folder
        out = ht("ingest", str(DEMO), "--out", str(out_dir), "--no-llm", "-q")
    no_traceback(out)
    assert out.returncode == 2 and "another hybridtune process" in out.stderr
    assert not (out_dir / "sessions.jsonl").exists()


def test_ingest_never_reads_its_own_outputs(tmp_path):
    inp = tmp_path / "transcripts"
    shutil.copytree(DEMO, inp)
    counts = []
    for _ in range(2):
        out = ht("ingest", str(inp), "--out", str(inp / "ingested"), "--no-llm", "-q")
        no_traceback(out)
        counts.append(len(_jsonl(inp / "ingested" / "sessions.jsonl")))
    assert counts[0] >= 5 and counts[1] == counts[0], counts


def _ingest_proc(inp: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hybridtune.cli", "ingest", str(inp), "--out", str(out), "--no-llm"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_ingest_resumes_with_identical_output(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    for k in range(3):  # three copies of each: the dedup state must survive the kill too
        for f in DEMO.iterdir():
            if not f.name.startswith("README"):
                shutil.copy(f, inp / f"{k}_{f.name}")
    n = len(list(inp.iterdir()))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    p = _ingest_proc(inp, ref)
    assert p.wait(timeout=300) == 1 or p.returncode == 0
    p = _ingest_proc(inp, killed)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "_ingest.json").exists() and p.poll() is None:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    state = json.loads((killed / "_ingest.json").read_text())
    assert 1 <= state["done"] < n and not state["committed"], "the kill should land inside pass 1"
    again = _ingest_proc(inp, killed)
    _, err = again.communicate(timeout=300)
    assert again.returncode in (0, 1) and "Traceback" not in err, err[-1500:]
    assert f"resuming after {state['done']} of {n} files" in err.replace("\n", "")
    for name in ("sessions.jsonl", "samples.jsonl", "quarantine.jsonl"):
        assert (killed / name).read_bytes() == (ref / name).read_bytes(), name
    rk, rr = (json.loads((d / "summary.json").read_text()) for d in (killed, ref))
    assert {k: v for k, v in rk.items() if k != "seconds"} == {k: v for k, v in rr.items() if k != "seconds"}


# -- 7 and 12. YAML alias bomb, duplicate keys --------------------------------------------------------
# 9 levels of 9 aliases = 387 million values, in a place the schema accepts anything (`extra`),
# so it used to pass validation and then hang `--show` (and any stage) at gigabytes
BOMB = "endpoints:\n  local:\n    backend: fake\n    extra:\n      a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"      {c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("args", [["config", "check"], ["config", "check", "--show"]])
def test_yaml_alias_bomb_is_refused_fast(tmp_path, args):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(BOMB)
    t0 = time.time()
    out = ht(*args[:2], str(cfg), *args[2:])
    no_traceback(out)
    assert out.returncode == 2 and "alias" in out.stderr and str(cfg) in out.stderr, out.stderr
    assert time.time() - t0 < 60


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("name: first\nseed: 1\nname: second\n")
    out = ht("config", "check", str(cfg))
    no_traceback(out)
    assert out.returncode == 2 and f"{cfg}: line 3: duplicate key 'name' (first at line 1)" in out.stderr, out.stderr


# -- 8. safety check ----------------------------------------------------------------------------------
def test_safety_check_one_bad_line_never_stops_the_file(tmp_path):
    src, dst = tmp_path / "texts.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "a", "text": "I slept badly"}),
        "[" * 5000 + "]" * 5000,                      # 10 KB of nesting: a RecursionError stopped everything
        json.dumps({"id": None, "text": "null id"}),  # became the id "None"
        json.dumps({"id": "b", "text": "I want to end my life"}),
    ]) + "\n")
    for _ in range(2):  # a rerun replaces the outputs: no duplicate events
        out = ht("safety", "check", str(src), "--out", str(dst), "--rules-only")
        no_traceback(out)
        assert out.returncode == 1, out.stderr  # 1: lines were quarantined
    assert [r["id"] for r in _jsonl(dst)] == ["a", "b"]
    q = _jsonl(tmp_path / "out.quarantine.jsonl")
    assert [e["line"] for e in q] == [2, 3] and "nested" in q[0]["reason"] and '"id"' in q[1]["reason"]
    events = _jsonl(tmp_path / "out.events.jsonl")
    assert [e["ref"] for e in events] == ["b"]


def test_safety_check_refuses_to_overwrite_its_input_or_read_a_folder(tmp_path):
    src = tmp_path / "texts.jsonl"
    lines = "".join(json.dumps({"id": f"t{i}", "text": f"line {i}"}) + "\n" for i in range(16))
    src.write_text(lines)
    out = ht("safety", "check", str(src), "--out", str(src), "--rules-only")
    no_traceback(out)
    assert out.returncode == 2 and "is also the input" in out.stderr and src.read_text() == lines
    out = ht("safety", "check", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--rules-only")
    no_traceback(out)
    assert out.returncode == 2 and "is a folder" in out.stderr and out.stderr.count("\n") == 1


# -- 9. review-import ---------------------------------------------------------------------------------
def _curated_run(tmp_path: Path) -> Path:
    from tests.curate.helpers import session, write_curated

    run = tmp_path / "runs" / "demo"
    write_curated(run, review=[session(1, mean=5), session(2, mean=5)])
    return run


def test_review_import_quarantines_non_object_lines_and_imports_the_rest(tmp_path):
    from tests.curate.helpers import session

    run = _curated_run(tmp_path)
    f = tmp_path / "decisions.jsonl"
    f.write_text("\n".join([
        json.dumps({"session_id": session(1).id, "decision": "accept", "reviewer": "ann"}),
        "[1, 2]", '"str"', "[" * 3000 + "]" * 3000, "null",
        json.dumps({"session_id": session(2).id, "decision": "reject", "reviewer": "ann"}),
    ]) + "\n")
    out = ht("review-import", str(run), str(f))
    no_traceback(out)
    assert out.returncode == 1 and "2 decisions imported, 4 rows skipped" in out.stdout, out.stdout + out.stderr
    assert [d["action"] for d in _jsonl(run / "curate" / "decisions.jsonl")] == ["accept", "reject"]
    assert [e["line"] for e in _jsonl(run / "curate" / "quarantine.jsonl")] == [2, 3, 4, 5]


# -- 10. secrets --------------------------------------------------------------------------------------
def test_key_in_api_key_env_is_refused_and_never_printed(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"endpoints:\n  remote:\n    backend: openai\n    api_key_env: {KEY}\n")
    for args in (["config", "check", str(cfg)], ["config", "check", str(cfg), "--show"], ["ask", "hi", "-c", str(cfg)]):
        out = ht(*args)
        no_traceback(out)
        assert out.returncode == 2 and "looks like a key, not a variable name" in out.stderr, out.stderr
        assert KEY not in out.stdout + out.stderr and KEY[:12] not in out.stdout + out.stderr


def test_key_in_backend_extra_is_refused_and_never_shown(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"endpoints:\n  local:\n    backend: fake\n    extra: {{api_key: {KEY}}}\n")
    out = ht("config", "check", str(cfg), "--show")
    no_traceback(out)
    assert out.returncode == 2 and "looks like a key" in out.stderr and KEY not in out.stdout + out.stderr


@pytest.mark.parametrize("url", [f"https://user:{KEY}@api.example.com/v1", f"https://api.example.com/v1?api_key={KEY}",
                                 f"https://api.example.com/{KEY}/v1"])
def test_key_inside_base_url_is_refused_and_never_saved(tmp_path, url):
    runs = tmp_path / "runs"
    demo = str(ROOT / "configs" / "demo.yaml")
    out = ht("config", "check", demo, "--show", "--set", f"endpoints.local.base_url={url}", "--set", "endpoints.local.backend=openai")
    no_traceback(out)
    assert out.returncode == 2 and "base_url" in out.stderr and "keys never go in a URL" in out.stderr, out.stderr
    assert KEY not in out.stdout + out.stderr
    out = ht("export", "-c", demo, "--set", f"runs_dir={runs}", "--set", f"endpoints.local.base_url={url}")
    assert out.returncode == 2 and not runs.exists()


def test_resolved_config_is_written_owner_only(make_cfg):
    from hybridtune.context import open_run

    cfg = make_cfg()
    (cfg.run_dir).mkdir(parents=True)
    (cfg.run_dir / "config.yaml").write_text("old: 1\n")
    os.chmod(cfg.run_dir / "config.yaml", 0o644)  # left by an older version
    with open_run(cfg):
        pass
    assert stat.S_IMODE((cfg.run_dir / "config.yaml").stat().st_mode) == 0o600


# -- 11. bad values and paths ---------------------------------------------------------------------------
def test_bad_values_and_paths_are_one_error_line(tmp_path):
    run = _curated_run(tmp_path)
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"id": "a", "text": "hello"}) + "\n")
    cases = [
        (["config", "check", str(ROOT / "configs" / "demo.yaml"), "--set", "seed=[1,2"], "--set seed: the value is not valid YAML"),
        (["ingest", str(DEMO), "--out", str(a_file), "--no-llm"], "exists and is not a folder"),
        (["safety", "check", str(texts), "--out", str(a_file / "x.jsonl"), "--rules-only"], "is a file, not a folder"),
        (["review-export", str(run), "/nonexistent/x.csv"], "/nonexistent does not exist"),
        (["review-export", str(run), str(tmp_path / "q.csv"), "--which", "bogus"], "--which bogus: unknown"),
    ]
    for args, expect in cases:
        out = ht(*args)
        no_traceback(out)
        assert out.returncode == 2 and expect in out.stderr, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr


# -- 12. smaller ones -----------------------------------------------------------------------------------
def test_fifo_and_symlink_loop_say_what_they_are(tmp_path):
    fifo, loop = tmp_path / "pipe.txt", tmp_path / "loop.txt"
    os.mkfifo(fifo)
    loop.symlink_to(loop)
    for p, expect in ((fifo, "named pipe"), (loop, "symlink loop")):
        out = ht("ingest", str(p), "--out", str(tmp_path / "out"), "--no-llm")
        no_traceback(out)
        assert out.returncode == 2 and expect in out.stderr and "does not exist" not in out.stderr, out.stderr


def test_broken_srt_timestamp_and_csv_quote_are_named(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    srt = "".join(f"{i}\n00:00:{i:02d},000 --> 00:00:{i:02d},900\nSpeaker {i % 2}: line {i} of the talk\n\n" for i in range(1, 9))
    (inp / "broken.srt").write_text(srt.replace("00:00:05,000 --> 00:00:05,900", "00:00:05,000 -> 00:00:0x,900"))
    (inp / "quote.csv").write_text("session_id,speaker,text\ns1,Counselor,Hello\ns1,Client,\"unterminated\ns1,Counselor,Go on\n")
    out = ht("ingest", str(inp), "--out", str(tmp_path / "out"), "--no-llm", "-q")
    no_traceback(out)
    q = {Path(e["file"]).name: e for e in _jsonl(tmp_path / "out" / "quarantine.jsonl")}
    assert "timing line is malformed" in q["broken.srt"]["reason"] and q["broken.srt"]["line"] == 18
    assert "malformed CSV" in q["quote.csv"]["reason"]
    assert not any("too_few_turns" in e["reason"] for e in q.values())


def test_unknown_endpoint_key_hint_lists_the_known_keys(tmp_path):
    out = ht("config", "check", str(ROOT / "configs" / "demo.yaml"), "--set", f"endpoints.local.api_key={KEY}")
    no_traceback(out)
    assert out.returncode == 2 and "endpoints.local.api_key: unknown key; did you mean 'api_key_env'?" in out.stderr
    assert KEY not in out.stderr
