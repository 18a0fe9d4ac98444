"""Format validation of training files: bad lines quarantined with file+line, unusable files
one clear error, system prompt inserted, hash sensitive to content."""
from __future__ import annotations

import pytest

from hybridtune.errors import UserError
from hybridtune.train.data import check_messages, data_hash, load_split

from .conftest import session, write_split


def test_bad_lines_are_quarantined_with_line_numbers(tmp_path):
    no_assistant = {"id": "x", "source": "real", "messages": [{"role": "user", "content": "hi"}]}
    bad_role = {"id": "y", "source": "real", "messages": [{"role": "counselor", "content": "hi"}]}
    late_system = session(3, "real")
    late_system["messages"].append({"role": "system", "content": "late"})
    p = write_split(tmp_path / "train.jsonl", [session(0, "real"), "{not json", no_assistant, bad_role,
                                               late_system, session(1, "real")])
    rows, bad = load_split(p, system_prompt="Be a CBT counselor.")
    assert len(rows) == 2
    assert [b.line for b in bad] == [2, 3, 4, 5]
    assert "not JSON" in bad[0].reason and "no assistant" in bad[1].reason
    assert "role" in bad[2].reason and "system message is only allowed first" in bad[3].reason
    assert all(b.file == str(p) for b in bad)
    assert rows[0][0] == {"role": "system", "content": "Be a CBT counselor."}


def test_file_with_nothing_usable_is_one_error_naming_file_and_line(tmp_path):
    p = write_split(tmp_path / "train.jsonl", ["[1, 2]", '{"id": "a", "source": "real", "messages": []}'])
    with pytest.raises(UserError) as e:
        load_split(p)
    assert str(p) in str(e.value) and "line 1" in str(e.value)
    with pytest.raises(UserError, match="run the `mix` stage"):
        load_split(tmp_path / "missing.jsonl")


def test_existing_system_prompt_is_kept_and_hash_tracks_content(tmp_path):
    s = session(0, "real")
    s["messages"].insert(0, {"role": "system", "content": "Own prompt."})
    p = write_split(tmp_path / "t.jsonl", [s])
    rows, _ = load_split(p, system_prompt="Default.")
    assert rows[0][0]["content"] == "Own prompt." and sum(m["role"] == "system" for m in rows[0]) == 1
    other = [[dict(m) for m in rows[0]]]
    other[0][-1]["content"] += "!"
    assert data_hash(rows) == data_hash([list(rows[0])]) != data_hash(other)
    assert data_hash(rows, []) != data_hash([], rows)  # train vs valid placement matters


def test_check_messages_rules():
    assert check_messages([]) == "no messages"
    assert check_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}])
    assert check_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]) is None
