"""Terminal chat loop over a `ChatEngine`: reads lines, streams replies, handles commands.

Input: lines from a text stream (stdin, or a pipe in tests). Output: the conversation on a
text stream; sessions saved by the engine (runs/<name>/chat/sessions.jsonl).

    hybridtune chat -c configs/demo.yaml --variant hybrid
    printf 'hello\\n/save\\n/quit\\n' | hybridtune chat -c configs/demo.yaml

The first line names the variant and model answering; a reply that stops mid-sentence (the
length limit) ends with a visible cut marker.

Commands: /save (a scrubbed snapshot of the session), /reset (start over), /quit (or end of
input; nothing is saved unless you said /save, or answer yes when asked at an interactive
prompt), /help. With conversations kept
(`--keep-conversations`): /nokeep (opt this conversation out: what was kept is deleted),
/up, /down and /comment TEXT (feedback on the last reply).
"""
from __future__ import annotations

import asyncio
from typing import TextIO

from ..safety.screen import BadText
from .engine import ChatEngine

HELP = "commands: /save  /reset  /quit  /help"
CUT = "[… cut off mid-sentence at the reply length limit, roles.counselor.max_tokens]"
KEEP_HELP = "this conversation is kept: /nokeep opts it out; /up, /down, /comment TEXT rate the last reply"
DISCLAIMER = ("This is an AI counselor for practice and support, not a substitute for professional care. "
              "In a crisis, contact local emergency services or a crisis line.")


def keep_command(engine: ChatEngine, line: str) -> str:
    """/nokeep, /keep, /up, /down, /comment TEXT: the kept-conversation commands; returns what to show."""
    from ..errors import UserError

    cmd, _, arg = line.partition(" ")
    cmd = cmd.lower()
    if cmd in ("/nokeep", "/keep"):
        engine.set_keep(cmd == "/keep")
        return "(this conversation is kept)" if engine.kept else "(this conversation is not kept; what was kept is deleted)"
    last = max((i for i, m in enumerate(engine.messages) if m.role == "assistant"), default=None)
    if last is None:
        return "(no reply to rate yet)"
    try:
        if cmd == "/comment":
            engine.rate(last, None, arg)
        else:
            engine.rate(last, cmd[1:], "")
    except UserError as e:
        return f"({e})"
    return "(thanks, feedback kept)"


def save_command(engine: ChatEngine) -> str:
    """/save: what to show after saving (or refusing to save) the conversation."""
    from ..errors import UserError

    try:
        s = engine.save()
    except UserError as e:
        return f"(not saved: {e})"
    return f"(saved session {s.id}, names and contact details removed, to {engine.out.file('sessions.jsonl')})" \
        if s else "(nothing to save yet)"


async def run_terminal(engine: ChatEngine, inp: TextIO, out: TextIO, interactive: bool = False) -> int:
    """Chat until /quit or end of input; returns the number of user turns answered."""

    def say(text: str = "", end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    say(f"[{engine.variant}] talking to {engine.who}")
    say(DISCLAIMER)
    if engine.log is not None:
        say(engine.cfg.conversations.notice)
        say(KEEP_HELP)
    say(HELP)
    turns = 0
    while True:
        if interactive:
            say("you> ", end="")
        line = await asyncio.to_thread(inp.readline)
        if not line:  # end of input
            break
        text = line.rstrip("\n")
        cmd = text.strip().lower()
        if not cmd:
            continue
        if cmd in ("/quit", "/exit"):
            break
        if cmd == "/help":
            say(HELP)
            continue
        if cmd == "/reset":
            engine.reset()
            say("(conversation reset)")
            continue
        if cmd == "/save":
            say(save_command(engine))
            continue
        if engine.log is not None and cmd.split()[0] in ("/nokeep", "/keep", "/up", "/down", "/comment"):
            say(keep_command(engine, text.strip()))
            continue
        if cmd.startswith("/"):
            say(f"(unknown command {cmd.split()[0]}; {HELP})")
            continue
        try:
            say("counselor> ", end="")
            async for ev in engine.turn(text):
                if ev.type == "safety":
                    say(ev.text)
                    if engine.cfg.safety.response_mode == "prefix":
                        say("")
                elif ev.type == "token":
                    say(ev.text, end="")
                elif ev.type == "error":
                    say(f"\n(error: {ev.text})", end="")
                elif ev.type == "done" and ev.cut:
                    say(f" {CUT}", end="")
            say("")
            turns += 1
        except BadText as e:
            say(f"(message not sent: {e})")
    if engine.unsaved and not engine.opted_out:
        if interactive:
            say("save a copy of this conversation (names and contact details removed)? [y/N] ", end="")
            answer = await asyncio.to_thread(inp.readline)
            say(save_command(engine) if answer.strip().lower() in ("y", "yes") else "(not saved)")
        else:
            say("(not saved; /save before /quit keeps a copy with names and contact details removed)")
    return turns
