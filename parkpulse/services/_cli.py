"""``parkpulse services up|down|status``: the command-line face of :mod:`parkpulse.services`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from parkpulse.services._errors import ServicesError
from parkpulse.services._manager import ENV_FILE, down, status, up
from parkpulse.services._settings import default_cache_dir

__all__ = ["services_app"]

services_app = typer.Typer(
    name="services",
    help="Start, stop and inspect the local Mosquitto and TimescaleDB used by tests and the demo.",
    no_args_is_help=True,
    add_completion=False,
)

CacheDirOption = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Where state, logs and data live [default: <project>/.cache]."),
]


def _fail(exc: ServicesError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


@services_app.command("up")
def up_command(cache_dir: CacheDirOption = None) -> None:
    """Start the services (or check they run) and print their URLs."""
    directory = cache_dir or default_cache_dir()
    started = time.monotonic()
    try:
        endpoints = up(directory, progress=typer.echo)
    except ServicesError as exc:
        raise _fail(exc) from exc
    typer.echo(f"services up ({endpoints.mode}) in {time.monotonic() - started:.1f} s; "
               f"env file: {directory.absolute() / ENV_FILE}")
    for key, value in endpoints.as_env().items():
        typer.echo(f"{key}={value}")


@services_app.command("down")
def down_command(cache_dir: CacheDirOption = None) -> None:
    """Stop the services started by up (data is kept)."""
    try:
        down(cache_dir or default_cache_dir())
    except ServicesError as exc:
        raise _fail(exc) from exc
    typer.echo("services stopped")


@services_app.command("status")
def status_command(cache_dir: CacheDirOption = None) -> None:
    """Show whether each service runs; exit code 1 if one does not."""
    report = status(cache_dir or default_cache_dir())
    for name, state in report.items():
        typer.echo(f"{name}: {state}")
    if not all(state.startswith(("running", "external (answers")) for state in report.values()):
        raise typer.Exit(code=1)
