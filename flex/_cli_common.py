"""Helpers shared by the ``parkpulse dr`` command modules: settings, the service, options, formatting.

Kept free of heavy imports at module level (Polars, psycopg load inside :func:`open_service`), so
``parkpulse --help`` stays instant.
"""

# Commands import the flex core lazily so `parkpulse --help` stays instant (as in every _cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from flex._direction import Direction, direction_help, parse_direction

if TYPE_CHECKING:
    from flex._service import DrService
    from flex._store import DrStore

console = Console()

PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", dir_okay=False, exists=True,
                 help="YAML file overriding keys of the built-in DR policy (flex/data/dr_policy.yaml); "
                      "default: PARKPULSE_DR_POLICY_FILE, else the built-in policy"),
]
DIRECTION_HELP = direction_help()


def fail(exc: Exception | str) -> typer.Exit:
    """Print an error (with what to do next, which flex errors carry) and return the exit to raise."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(code=1)


def open_service(policy: Path | None = None) -> tuple[DrService, DrStore]:
    """A :class:`DrService` on the configured database with the effective policy.

    The policy is ``policy`` (``--policy FILE``), else ``PARKPULSE_DR_POLICY_FILE``, else the built-in one;
    a bad file stops the command with the offending key named.
    """
    from flex._policy import load_policy
    from flex._service import DrService
    from flex._settings import DrServiceSettings
    from flex._store import DrStore
    from flex.errors import DataFileError
    from infra.logconfig import configure_logging

    settings = DrServiceSettings()  # type: ignore[call-arg]
    configure_logging(settings.log_level)
    try:
        effective = load_policy(policy or settings.dr_policy_file)
    except DataFileError as exc:
        raise fail(exc) from None
    store = DrStore(settings.database_url)
    return DrService(store, policy=effective), store


def direction_option(value: str | None) -> Direction | None:
    """Typer callback: a direction word (``up``, ``reduce``, ``削峰`` ...) → :class:`Direction`."""
    if value is None:
        return None
    try:
        return parse_direction(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def aware(value: str, what: str) -> datetime:
    """An ISO 8601 time with a UTC offset (naive times are refused, never guessed)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{what} must be ISO 8601, e.g. 2026-07-15T14:00+08:00") from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{what} needs a UTC offset, e.g. 2026-07-15T14:00+08:00")
    return parsed


def fmt(value: float | None, unit: str = "") -> str:
    """A quantity with one decimal and thousands separators, ``—`` when unknown."""
    return "—" if value is None else f"{value:,.1f}{unit}"
