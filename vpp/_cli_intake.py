"""``parkpulse vpp …`` commands of one job (intake)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this job's commands to ``app``."""
    del app
