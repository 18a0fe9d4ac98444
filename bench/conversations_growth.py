"""Kept conversations: time and bytes per reply of the incremental writer against whole snapshots.

A 30-turn conversation (15 replies; names, an e-mail, a phone number and a street among ordinary
counseling talk) is kept through `ConversationLog.save` with the real scrubber (spaCy NER on).
Baseline, same run and the same warm scrubber: the writer before increments (`whole_snapshot_save`
below: every reply scrubs every turn again and appends the whole conversation). Both run reply by
reply, alternating, into separate folders; the figures are the last reply's seconds and bytes,
and the totals over the conversation.

    .venv/bin/python bench/conversations_growth.py
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import Result, record

from hybridtune.app.conversations import ConversationLog, snapshots
from hybridtune.records import Message, Session
from hybridtune.store import StageDir

COMMAND = ".venv/bin/python bench/conversations_growth.py"
USER = [
    "Hi, my name is Sarah Whitfield and I have not slept properly in weeks.",
    "Work is the main thing. My manager, Tom Becker, keeps piling tasks on me.",
    "I moved into 42 Maple Street last spring and I still do not feel at home there.",
    "My sister Hannah says I should talk to someone, so here I am.",
    "When I lie in bed I replay every meeting and every mistake I made that day.",
    "Becker sent an email at midnight again and I answered it straight away.",
    "You can reach me at sarah.whitfield@example.com if that matters for anything.",
    "I guess I think that if I stop answering I will lose the job.",
    "Hannah thinks I am catastrophizing, and maybe she is right about that.",
    "My phone is 555-201-3344 but please do not call during work hours.",
    "Last week I cried in the car park before going in, which scared me.",
    "I tried the breathing thing you mentioned and it helped a little on Tuesday.",
    "Whitfield is my married name; I kept it after the divorce, which is another story.",
    "I would like to set a rule about not reading email after nine in the evening.",
    "Thank you, this helped. I will try the rule this week and tell Hannah about it.",
]
REPLY = ("That sounds exhausting, and it makes sense that your mind keeps going back to it. "
         "What do you notice in your body when that happens, and what do you tell yourself then?")


@dataclass
class Chat:
    """A conversation in progress as the log reads it (app/transcript.py ChatTranscript)."""

    session_id: str
    variant: str = "counselor"
    started: float = field(default_factory=time.time)
    kept_from: int = 0
    messages: list[Message] = field(default_factory=list)
    turn_risks: list[dict] = field(default_factory=list)


def whole_snapshot_save(st: StageDir, scrubber, chat: Chat) -> Session:
    """The baseline: the writer before increments (scrub every turn, append the whole conversation)."""
    turns = chat.messages[chat.kept_from:]
    texts, counts = scrubber.scrub_session([m.content for m in turns], key=chat.session_id)
    s = Session(id=chat.session_id, source="real",
                messages=[Message(role=m.role, content=t) for m, t in zip(turns, texts, strict=True)],
                meta={"kind": "conversation", "surface": "chat", "variant": chat.variant, "started": chat.started,
                      "updated": time.time(), "safety": chat.turn_risks, "turns": len(turns), "pii": dict(counts)})
    st.append("sessions.jsonl", s)
    return s


def timed(fn, path: Path) -> tuple[float, int]:
    before = path.stat().st_size if path.exists() else 0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, path.stat().st_size - before


def main() -> None:
    from hybridtune.config import load_config

    with tempfile.TemporaryDirectory(prefix="hybridtune-bench-") as tmp:
        cfg = load_config(None, [f"runs_dir={tmp}", "quiet=true", "real.pii.ner=true", "conversations.keep=true"])
        log = ConversationLog(Path(tmp) / "new", cfg)
        old = StageDir(Path(tmp) / "old", "conversations", private=True)
        log.scrubber.scrub_text("warm up: Sarah Jones lives in Denver")  # load spaCy outside the timed part
        chat = Chat(session_id="bench-conversation")
        rows = []
        for i, text in enumerate(USER):
            chat.messages += [Message(role="user", content=text), Message(role="assistant", content=REPLY)]
            chat.turn_risks.append({"index": 2 * i, "risk": "none", "categories": [], "source": "rules"})
            new_s, new_b = timed(lambda: log.save(chat, "chat"), log.st.file("sessions.jsonl"))
            old_s, old_b = timed(lambda: whole_snapshot_save(old, log.scrubber, chat), old.file("sessions.jsonl"))
            rows.append((new_s, new_b, old_s, old_b))
        same = (snapshots(log.st.path)[chat.session_id][30].messages
                == snapshots(old.path)[chat.session_id][30].messages)
    report(rows, same)


def report(rows: list[tuple[float, int, float, int]], same: bool) -> None:
    new_s, new_b, old_s, old_b = rows[-1]
    tot = [sum(r[i] for r in rows) for i in range(4)]
    per_reply = {"new_seconds": [round(r[0], 3) for r in rows], "new_bytes": [r[1] for r in rows],
                 "old_seconds": [round(r[2], 3) for r in rows], "old_bytes": [r[3] for r in rows]}
    note = (f"30 turns, spaCy NER on; the 30-turn conversation rebuilt from increments "
            f"{'equals' if same else 'DIFFERS from'} the last whole snapshot")
    record("conversations_growth", [
        Result("seconds to keep reply 15 (turns 29-30)", f"{new_s:.3f} s", f"{old_s:.3f} s (whole snapshot)",
               round(new_s / old_s, 3), "<= 0.5", new_s / old_s <= 0.5, COMMAND, note, per_reply),
        Result("bytes appended for reply 15", f"{new_b} B", f"{old_b} B (whole snapshot)",
               round(new_b / old_b, 3), "<= 0.25", new_b / old_b <= 0.25, COMMAND, note),
        Result("seconds to keep all 15 replies", f"{tot[0]:.2f} s", f"{tot[2]:.2f} s (whole snapshot)",
               round(tot[0] / tot[2], 3), "<= 0.5", tot[0] / tot[2] <= 0.5, COMMAND, note),
        Result("file size after 30 turns", f"{tot[1]} B", f"{tot[3]} B (whole snapshot)",
               round(tot[1] / tot[3], 3), "<= 0.25", tot[1] / tot[3] <= 0.25, COMMAND, note),
        Result("rebuilt conversation equals the whole snapshot", str(same), "True", None, "True", same, COMMAND, note),
    ])


if __name__ == "__main__":
    main()
