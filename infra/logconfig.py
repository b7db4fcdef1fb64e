"""Logging set-up for entry points only; library modules just call ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


def configure_logging(level: str = "INFO") -> None:
    """Send log records to stderr through rich, at ``level`` (quiet third-party chatter)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=Console(stderr=True), rich_tracebacks=True, show_path=False)],  # stdout is data
        force=True,
    )
    for noisy in ("aiomqtt", "asyncio", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
