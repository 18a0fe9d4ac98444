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
