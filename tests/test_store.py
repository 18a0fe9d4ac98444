"""Run store: atomic writes, torn-line tolerance, dedup by id, done markers, the lock."""
from __future__ import annotations

import pytest

from hybridtune.errors import UserError
from hybridtune.records import Message, Session
from hybridtune.store import RunStore


def _s(i: int) -> Session:
    return Session(id=f"s{i}", source="real", messages=[Message(role="user", content=f"hello {i}")])


def test_append_read_dedup_and_torn_line(tmp_path):
    st = RunStore(tmp_path / "run").stage("real")
    st.append_many("sessions.jsonl", [_s(1), _s(2)])
    st.append("sessions.jsonl", _s(1))  # a duplicate from a resumed run
    with st.file("sessions.jsonl").open("a") as f:
        f.write('{"id": "s3", "source": "real", "mess')  # killed mid-write
    got = list(st.read("sessions.jsonl", Session))
    assert [s.id for s in got] == ["s1", "s2"]
    assert st.ids("sessions.jsonl") == {"s1", "s2"}


def test_done_marker_and_reset(tmp_path):
    st = RunStore(tmp_path / "run").stage("x")
    assert not st.is_done()
    st.mark_done({"n": 3})
    assert st.is_done() and st.summary() == {"n": 3}
    st.reset()
    assert not st.is_done()


def test_write_records_atomic_replaces(tmp_path):
    st = RunStore(tmp_path / "run").stage("x")
    st.write_records("a.jsonl", [_s(1), _s(2)])
    st.write_records("a.jsonl", [_s(3)])
    assert [s.id for s in st.read("a.jsonl", Session)] == ["s3"]
    assert not list(st.path.glob(".*.tmp"))


def test_lock_blocks_second_writer(tmp_path):
    import subprocess
    import sys

    store = RunStore(tmp_path / "run")
    with store.locked():
        code = (
            "import sys; from pathlib import Path; from hybridtune.store import RunStore\n"
            "from hybridtune.errors import UserError\n"
            f"try:\n  RunStore(Path({str(tmp_path / 'run')!r})).locked().__enter__()\n"
            "except UserError as e:\n  print('LOCKED', e); sys.exit(0)\nsys.exit(1)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0 and "another hybridtune process" in out.stdout


def test_bad_stage_name(tmp_path):
    with pytest.raises(AssertionError):
        RunStore(tmp_path).stage("../evil")
    assert UserError


def _pass(st, fp="fp"):
    from hybridtune.store import CheckpointedPass

    return CheckpointedPass(st, "_state.json", fp, ("out.jsonl", "log.jsonl"))


def _run(st, units, stop_after=None, fp="fp"):
    """A pass writing two records per unit; `stop_after` units it writes half of the next and 'dies'."""
    run = _pass(st, fp)
    w = run.open()
    counters = dict(run.state.counters)
    for i, u in enumerate(units[run.done:], run.done):
        if i == stop_after:
            w["out.jsonl"].write({"id": f"{u}-a"})  # written after the last checkpoint, then killed
            w["out.jsonl"].f.flush()
            return run
        for part in "ab":
            w["out.jsonl"].write({"id": f"{u}-{part}"})
        w["log.jsonl"].write({"unit": u})
        counters["n"] = counters.get("n", 0) + 2
        run.checkpoint(i + 1, counters)
    run.commit(len(units), counters)
    return run


def test_checkpointed_pass_resumes_to_the_same_bytes(tmp_path):
    units = ["u0", "u1", "u2", "u3"]
    ref = RunStore(tmp_path / "ref").stage("x")
    _run(ref, units)
    st = RunStore(tmp_path / "run").stage("x")
    _run(st, units, stop_after=2)
    assert not st.file("out.jsonl").exists()  # nothing final before the commit
    resumed = _pass(st)
    assert resumed.done == 2 and resumed.state.counters == {"n": 4} and not resumed.committed
    assert [e["unit"] for e in resumed.lines("log.jsonl")] == ["u0", "u1"]
    _run(st, units)
    for name in ("out.jsonl", "log.jsonl"):
        assert st.file(name).read_bytes() == ref.file(name).read_bytes(), name
    assert _pass(st).committed and [e["unit"] for e in _pass(st).lines("log.jsonl")] == units
    assert not list(st.path.glob(".*.tmp"))


def test_checkpointed_pass_starts_over_on_other_inputs_or_a_lost_temp_file(tmp_path):
    st = RunStore(tmp_path / "run").stage("x")
    _run(st, ["u0", "u1", "u2"], stop_after=2)
    assert _pass(st, fp="other").done == 0  # other inputs or config
    st.file(".out.jsonl.tmp").write_bytes(b"")  # shorter than the checkpoint recorded
    assert _pass(st).done == 0


def test_fingerprint_follows_config_and_files(tmp_path):
    import os

    from hybridtune.store import fingerprint

    f = tmp_path / "a.txt"
    f.write_text("one")
    fp = fingerprint({"k": 1}, [f])
    assert fingerprint({"k": 1}, [f]) == fp and fingerprint({"k": 2}, [f]) != fp
    os.utime(f, ns=(1, 1))
    assert fingerprint({"k": 1}, [f]) != fp
