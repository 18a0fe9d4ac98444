"""Kept conversations grow linearly (issue 26 item 15): each reply appends only its new turns,
scrubbed with the names and surrogates of the earlier ones carried over, and the readers rebuild
exactly the snapshots a whole-conversation scrub after every reply would have stored; folders
written as whole snapshots still read.

    PYTHONPATH=. .venv/bin/python -m pytest -q tests/app/test_conversation_growth.py
"""
from __future__ import annotations

import asyncio
import json

import pytest

from hybridtune.app import conversations as C
from hybridtune.app.engine import open_engine
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.real.pii import Scrubber

FAST = ("safety.use_model=false", "real.pii.ner=false", "conversations.keep=true")
REPLY = "Thank you for telling me. What feels hardest about that?"
# a name said before anything marks it as one (turn 0), then marked ("Mr"), then alone again
LINES = [
    "Whitfield at work was rude to me again today.",
    "My email is sarah.w@example.com and my phone is 555-201-3344.",
    "I mean Mr Whitfield, my manager. My name is Sarah Jones.",
    "Whitfield said Sarah should quit, and Jones is my maiden name.",
    "Call me on 555-201-3344 tomorrow, or write to sarah.w@example.com.",
    "I keep thinking about the meeting on Friday.",
]


def _engine(make_cfg, *overrides):
    cfg = make_cfg(*FAST, *overrides)
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend(responder=lambda req: REPLY))
    return open_engine(cfg, pool=pool), cfg


def _say(eng, text: str) -> None:
    async def go():
        async for _ in eng.turn(text):
            pass

    asyncio.run(go())


def test_bytes_written_per_reply_do_not_grow_with_the_conversation(make_cfg):
    eng, cfg = _engine(make_cfg)
    path = C.folder_of(cfg) / "sessions.jsonl"
    sizes = [0]
    for i in range(15):  # 30 turns
        _say(eng, f"Today was hard again, day {i:02d}, and I kept thinking about work all evening.")
        sizes.append(path.stat().st_size)
    grew = [b - a for a, b in zip(sizes, sizes[1:])]
    assert max(grew[1:]) < 1.2 * grew[1], grew  # whole snapshots: reply 15 would write ~15x reply 1
    assert len(path.read_text().splitlines()) == 15
    (conv,) = C.sessions(C.folder_of(cfg)).values()
    assert len(conv.messages) == 30 and conv.meta["turns"] == 30


def test_a_name_from_an_early_turn_is_replaced_when_it_comes_back_alone(make_cfg):
    eng, cfg = _engine(make_cfg)
    _say(eng, "My name is Sarah Whitfield and work is awful.")
    for _ in range(8):
        _say(eng, "Nothing new, same as always.")
    _say(eng, "Whitfield is the name my ex kept, by the way.")
    lines = [json.loads(x) for x in (C.folder_of(cfg) / "sessions.jsonl").read_text().splitlines()]
    last = lines[-1]
    assert last["turns_from"] == 18 and len(last["messages"]) == 2  # only the new turns were written
    assert "Whitfield" not in json.dumps(lines)
    fake_surname = lines[0]["messages"][0]["content"].split()[-5]  # "My name is <first> <last> and work is awful."
    assert last["messages"][0]["content"].startswith(f"{fake_surname} is the name")  # the same fake as in turn 0


def test_scrub_turns_carries_names_and_surrogates_across_increments(make_cfg):
    cfg = make_cfg("real.pii.ner=false")
    scrubber = Scrubber(cfg.real.pii, seed=3)
    turns = ["My name is Sarah Whitfield, I live at 12 Oak Street.", "OK.",
             "Whitfield again: call 555-201-3344.", "12 Oak Street is cold. Sarah is tired.",
             "Still 555-201-3344, ask for Sarah."]
    state = scrubber.start("c1")
    parts = [scrubber.scrub_turns(state, turns[a:b]) for a, b in ((0, 2), (2, 3), (3, 5))]
    texts = [t for p in parts for t in p[0]]
    whole, counts = scrubber.scrub_session(turns, key="c1")
    assert texts == whole  # the same original -> the same fake in the whole conversation
    assert sum((c for p in parts for c in p[1]), type(counts)()) == counts
    assert not any(x in " ".join(texts) for x in ("Whitfield", "Sarah", "Oak Street", "555-201-3344"))
    alone = scrubber.scrub_turns(scrubber.start("c1"), turns[2:3])[0][0]
    assert "Whitfield" in alone  # without the carried state the bare surname is missed


@pytest.mark.parametrize("ner", ["false", "true"])
def test_rebuilt_snapshots_equal_what_a_whole_scrub_after_every_reply_stored(make_cfg, ner):
    eng, cfg = _engine(make_cfg, f"real.pii.ner={ner}")
    folder = C.folder_of(cfg)
    expected = {}
    for line in LINES:
        _say(eng, line)
        texts, counts = eng.log.scrubber.scrub_session([m.content for m in eng.messages], key=eng.session_id)
        expected[len(texts)] = (texts, dict(counts), [r["index"] for r in eng.turn_risks])
    lines = [json.loads(x) for x in (folder / "sessions.jsonl").read_text().splitlines()]
    assert lines[-1]["turns_from"] == 2 * len(LINES) - 2  # a reply naming no one new: its two turns only
    if ner == "false":  # (spaCy may already take turn 0's "Whitfield" for a name)
        assert lines[2]["turns_from"] == 0
    snaps = C.snapshots(folder)[eng.session_id]
    assert sorted(snaps) == sorted(expected)
    for n, (texts, counts, risk_at) in expected.items():
        assert [m.content for m in snaps[n].messages] == texts, n
        assert snaps[n].meta["pii"] == counts and [r["index"] for r in snaps[n].meta["safety"]] == risk_at
    assert "Whitfield" not in json.dumps(lines[2:])  # (line 0 holds it as the whole scrub of turn 0 did)


def test_conversation_state_is_dropped_on_opt_out_and_when_idle(make_cfg):
    eng, cfg = _engine(make_cfg)
    _say(eng, "My name is Sarah Whitfield.")
    assert eng.session_id in eng.log._open
    eng.set_keep(False)
    assert eng.session_id not in eng.log._open
    eng.set_keep(True)
    _say(eng, "Back again.")
    eng.log.IDLE_S = 0.0  # idle "a while": the next reply finds the state gone and writes every kept turn
    _say(eng, "And again.")
    lines = [json.loads(x) for x in (C.folder_of(cfg) / "sessions.jsonl").read_text().splitlines()]
    assert [(x["turns_from"], len(x["messages"])) for x in lines] == [(0, 2), (0, 4)]
    assert [m.content for m in C.sessions(C.folder_of(cfg))[eng.session_id].messages][::2] == ["Back again.", "And again."]
    eng.log.IDLE_S, eng.log.MAX_OPEN = 1800.0, 1  # and bounded: a second conversation pushes the first out
    other = eng.fork()
    other.started += 1.0  # (its own id)
    _say(other, "Someone else.")
    assert list(eng.log._open) == [other.session_id]


def _old_line(cid: str, texts: list[str], updated: float) -> str:
    """A line as the whole-snapshot writer stored it."""
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]
    return json.dumps({"id": cid, "source": "real", "messages": msgs, "annotations": [], "scores": {},
                       "meta": {"kind": "conversation", "surface": "serve", "variant": "counselor", "started": 1.0,
                                "updated": updated, "safety": [{"index": 0, "risk": "none"}], "turns": len(texts),
                                "pii": {}}}) + "\n"


def test_folders_written_as_whole_snapshots_still_read(make_cfg, tmp_path):
    from hybridtune.curate.decisions import Decision

    folder = tmp_path / "conversations"
    folder.mkdir()
    (folder / C.MANIFEST).write_text("{}")
    a2, a4 = ["I feel low.", "Tell me more."], ["I feel low.", "Tell me more.", "Work.", "What about it?"]
    (folder / "sessions.jsonl").write_text(_old_line("a", a2, 10.0) + _old_line("a", a4, 20.0)
                                           + _old_line("b", ["Hi.", "Hello."], 30.0))
    snaps = C.snapshots(folder)
    assert {cid: sorted(s) for cid, s in snaps.items()} == {"a": [2, 4], "b": [2]}
    assert [m.content for m in C.sessions(folder)["a"].messages] == a4
    # an increment appended after the whole snapshots continues them
    inc = C.Increment(id="a", turns_from=4, messages=[{"role": "user", "content": "More."}, {"role": "assistant", "content": "Go on."}],
                      meta={"kind": "conversation", "updated": 40.0, "safety": [{"index": 4, "risk": "none"}], "turns": 6})
    with (folder / "sessions.jsonl").open("a") as f:
        f.write(inc.model_dump_json() + "\n")
    latest = C.sessions(folder)["a"]
    assert [m.content for m in latest.messages] == [*a4, "More.", "Go on."]
    assert [r["index"] for r in latest.meta["safety"]] == [0, 4] and latest.meta["updated"] == 40.0
    # the review decision names the 2-turn snapshot: exactly it is exported
    d = Decision(id="d1", session_id="a", action="accept", reviewer="ana", time="t", snapshot=2)
    (folder / "decisions.jsonl").write_text(d.model_dump_json() + "\n")
    assert C.export_accepted(folder) == 1
    (row,) = [json.loads(x) for x in (folder / "accepted.jsonl").read_text().splitlines()]
    assert [m["content"] for m in row["messages"]] == a2
    assert C.purge(folder, {"a"}) == 5 and list(C.sessions(folder)) == ["b"]
