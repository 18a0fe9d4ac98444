"""CLI verbs of the `evaluate` stage (registered by hybridtune/cli.py)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""
