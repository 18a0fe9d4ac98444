"""How the evaluation judges see a conversation: `transcript(ctx, session)`, one turn per line,
labelled with the domain pack's speaker names (score, pairwise, calibrate and experts share it).

    text = transcript(ctx, session)   # "Client: ...\nCounselor: ..."
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..context import Context
    from ..records import Session


def transcript(ctx: Context, s: Session) -> str:
    """Each turn on one line (a newline inside a turn cannot forge another speaker's line)."""
    names = ctx.domain.meta.get("speakers", {}) or {}
    label = {"user": str(names.get("user", "client")).capitalize(),
             "assistant": str(names.get("assistant", "counselor")).capitalize()}
    return "\n".join(f"{label[m.role]}: {' '.join(m.content.split())}" for m in s.messages if m.role != "system")
