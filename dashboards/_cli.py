"""``parkpulse dashboards build`` / ``deploy``.

Mount with ``from dashboards._cli import dashboards_app`` and
``app.add_typer(dashboards_app, name="dashboards")``. Rendering needs the optional Grafana SDK
(``pip install -e '.[dashboards]'``); both commands say so instead of failing with a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dashboards._model import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from dashboards._build import BuiltBoard

dashboards_app = typer.Typer(help="Grafana dashboards as code: build JSON files, deploy over the HTTP API.",
                             no_args_is_help=True)


class LangOption(StrEnum):
    """Language sets: bilingual, Chinese, English."""

    BI = "bi"
    ZH = "zh"
    EN = "en"


LangsArg = Annotated[list[LangOption] | None, typer.Option(
    "--lang", help="Language set(s): bi (中文 · English, default), zh, en; repeat for several.")]
TimezoneArg = Annotated[str, typer.Option(help="Dashboard time zone (IANA name or 'browser').")]


def _build(langs: list[LangOption] | None, timezone: str) -> list[BuiltBoard]:
    try:
        from dashboards._build import build_dashboards
    except ImportError as exc:
        typer.echo(f"the Grafana SDK is missing ({exc.name}): pip install -e '.[dashboards]'", err=True)
        raise typer.Exit(2) from None
    from dashboards._text import Lang
    from dashboards.errors import DashboardError

    try:
        return build_dashboards([Lang(lang.value) for lang in (langs or [LangOption.BI])], timezone=timezone)
    except DashboardError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def build(
    out: Annotated[Path, typer.Option("--out", help="Directory for the dashboard JSON files (created).",
                                      file_okay=False)],
    lang: LangsArg = None,
    timezone: TimezoneArg = DEFAULT_TIMEZONE,
) -> None:
    """Render and validate every dashboard, then write one JSON file per dashboard into --out."""
    from rich.console import Console
    from rich.table import Table

    from dashboards._build import write_dashboards

    built = _build(lang, timezone)
    paths = write_dashboards(out, built)
    table = Table("uid", "title", "panels", "queries", "file", title="dashboards", title_justify="left")
    for item, path in zip(built, paths, strict=True):
        panels = item.board.panels()
        table.add_row(item.uid, str(item.json["title"]), str(len(panels)),
                      str(sum(len(p.queries) for p in panels)), str(path))
    Console().print(table)


def deploy(
    lang: LangsArg = None,
    timezone: TimezoneArg = DEFAULT_TIMEZONE,
    url: Annotated[str | None, typer.Option(help="Grafana base URL (default PARKPULSE_GRAFANA_URL).")] = None,
    folder: Annotated[str | None, typer.Option(help="Folder uid (default PARKPULSE_GRAFANA_FOLDER_UID).")] = None,
) -> None:
    """Build the dashboards and push them to a running Grafana with a service-account token.

    The token comes from PARKPULSE_GRAFANA_TOKEN (never a command-line argument, which would land in the
    shell history and the process list).
    """
    from rich.console import Console

    from dashboards._deploy import GrafanaClient, deploy_dashboards
    from dashboards._settings import DashboardSettings
    from dashboards.errors import DeployError
    from infra.logconfig import configure_logging

    configure_logging("WARNING")
    settings = DashboardSettings()
    if settings.grafana_token is None:
        typer.echo("set PARKPULSE_GRAFANA_TOKEN to a Grafana service-account token (Editor role)", err=True)
        raise typer.Exit(2)
    built = _build(lang, timezone)
    base = url or settings.grafana_url
    try:
        with GrafanaClient(base, settings.grafana_token.get_secret_value(),
                           timeout_s=settings.grafana_timeout_s) as client:
            results = deploy_dashboards([b.json for b in built], client,
                                        folder_uid=folder or settings.grafana_folder_uid,
                                        folder_title=settings.grafana_folder_title)
    except DeployError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    console = Console()
    for result in results:
        console.print(f"{result.uid}: version {result.version} {base.rstrip('/')}{result.url}")


dashboards_app.command("build")(build)
dashboards_app.command("deploy")(deploy)

__all__ = ["dashboards_app"]
