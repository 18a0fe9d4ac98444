"""Config section `conversations`: keeping the counselor's conversations with real users (see app/conversations.py).

Declared here, beside the app, so the experiment config (hybridtune/config.py) reads it without
importing the chat app.

    cfg.conversations.keep      # off by default
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NOTICE = ("This conversation is kept to improve the counselor: names, places and contact details are removed "
          "first, and a reviewer may read it. Untick \"Keep this conversation\" to have it deleted and not kept.")


class ConversationsConfig(BaseModel):
    """Config section `conversations`: keeping the counselor's conversations with real users."""

    model_config = ConfigDict(extra="forbid")
    keep: bool = Field(False, description="keep serve/chat conversations (scrubbed) in runs/<name>/conversations; "
                       "users see `notice` and can opt each conversation out")
    notice: str = Field(NOTICE, min_length=20, description="what users are told when keeping is on")
    max_comment_chars: int = Field(2000, ge=1, description="longest feedback comment accepted")
    retention_days: float | None = Field(None, gt=0, description="delete kept conversations not updated for this "
                                         "many days (when chat/serve start, and by `conversations delete`); "
                                         "None keeps them until deleted")
