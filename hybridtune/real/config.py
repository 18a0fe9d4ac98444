"""Config section `real`: ingestion of real transcripts (see hybridtune/real/)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RealConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(default_factory=list, description="files or folders of real transcripts")
    format: str = Field("auto", description="auto | annomi | csv | text | vtt | srt | jsonl | esconv")
