"""Logging set-up for entry points only; library modules just call ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

#: Libraries that set their own logger's level when imported (openleadr sets INFO and then logs every poll,
#: once a second): their records below WARNING pass only when the entry point asks for DEBUG.
_CHATTY_ON_IMPORT = ("openleadr",)


class _ChattyLibraryFilter(logging.Filter):
    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.floor:
            return True
        return not any(record.name == name or record.name.startswith(f"{name}.") for name in _CHATTY_ON_IMPORT)


def configure_logging(level: str = "INFO") -> None:
    """Send log records to stderr through rich, at ``level`` (quiet third-party chatter)."""
    handler = RichHandler(console=Console(stderr=True), rich_tracebacks=True, show_path=False)  # stdout is data
    root_level = logging.getLevelName(level.upper())
    handler.addFilter(_ChattyLibraryFilter(logging.WARNING if root_level != logging.DEBUG else logging.DEBUG))
    logging.basicConfig(level=level.upper(), format="%(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[handler], force=True)
    for noisy in ("aiomqtt", "asyncio", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
