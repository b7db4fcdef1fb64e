"""``parkpulse alarms notify`` (the dispatcher) and ``parkpulse alarms deliveries`` (the delivery record).

Mounting (in ``parkpulse/_server_cli.py``, on the ``alarms`` sub-app)::

    from alarms._notify_cli import deliveries, notify
    alarms_app.command("notify")(notify)
    alarms_app.command("deliveries")(deliveries)

Heavy modules (psycopg, httpx, aiosmtplib) are imported inside the commands, so ``--help`` stays instant.
This entry point is the one place that hands the process environment to the config loader, for the
``{env: NAME}`` secret references.
"""

# ruff: noqa: PLC0415  (commands import their modules lazily so --help stays instant, as in every _cli.py)

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

if TYPE_CHECKING:
    from alarms._dispatch import PassReport
    from alarms._notify_config import NotifyConfig
    from alarms._notify_settings import NotifySettings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

EXAMPLE = "alarms/data/notify.example.yaml"
Status = Literal["pending", "sent", "failed", "cancelled"]


def _settings(database_url: str | None) -> NotifySettings:
    from pydantic import ValidationError

    from alarms._notify_settings import NotifySettings

    try:
        if database_url:
            return NotifySettings(database_url=database_url)
        return NotifySettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        err_console.print(f"[red]error[/]: settings: {'; '.join(e['msg'] for e in exc.errors())}; "
                          "set PARKPULSE_DATABASE_URL or pass --database-url", highlight=False)
        raise typer.Exit(1) from None


def _config(path: Path | None, settings: NotifySettings) -> NotifyConfig:
    from alarms._notify_config import load_notify_config
    from alarms._notify_errors import NotifyConfigError

    chosen = path or settings.notify_config_file
    if chosen is None:
        err_console.print(f"[red]error[/]: no notify config; copy {EXAMPLE}, adapt channels, lists and routes, "
                          "then pass --config FILE or set PARKPULSE_NOTIFY_CONFIG_FILE", highlight=False)
        raise typer.Exit(1)
    try:
        return load_notify_config(chosen, os.environ)
    except NotifyConfigError as exc:
        err_console.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(1) from None


def _print_config(config: NotifyConfig) -> None:
    from rich.table import Table

    from alarms._notify_config import EmailChannelConfig

    channels = Table("channel", "kind", "goes to", title="channels (secrets resolved, not shown)")
    for name, ch in config.channels.items():
        target = (f"{ch.host}:{ch.port} ({ch.security}) → {', '.join(ch.to)}" if isinstance(ch, EmailChannelConfig)
                  else "URL from a secret reference" if ch.kind != "webhook" else "webhook URL (secret)")
        channels.add_row(name, ch.kind, target)
    lists = Table("list", "channels", "quiet hours (park time)", title="recipient lists")
    for name, rl in config.lists.items():
        q = rl.quiet_hours
        quiet = (f"{q.start:%H:%M}–{q.end:%H:%M}" + (", critical passes" if q.critical_overrides else ", all held")
                 if q else "none")
        lists.add_row(name, ", ".join(rl.channels), quiet)
    routes = Table("park", "info", "warning", "critical", "escalation", title="routes")
    for park, r in config.routes.items():
        esc = f"after {r.escalation.after_minutes} min → {', '.join(r.escalation.to)}" if r.escalation else "none"
        routes.add_row(park, ", ".join(r.info) or "-", ", ".join(r.warning) or "-", ", ".join(r.critical) or "-", esc)
    for table in (channels, lists, routes):
        console.print(table)
    retry = config.retry
    console.print(f"retry: up to {retry.max_attempts} attempts, backoff {retry.initial_delay_s:g} s doubling to "
                  f"{retry.max_delay_s:g} s (jittered)", highlight=False)


async def _one_pass(settings: NotifySettings, config: NotifyConfig, parks: list[str] | None) -> PassReport:
    import psycopg

    from alarms._channels import open_channels
    from alarms._dispatch import Dispatcher

    async with open_channels(config) as channels, \
            await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        dispatcher = Dispatcher(config, channels, parks=parks, batch_size=settings.notify_batch_size,
                                lease_s=settings.notify_lease_s, max_concurrent=settings.notify_max_concurrent)
        return await dispatcher.run_once(conn)


async def _serve(settings: NotifySettings, config: NotifyConfig, parks: list[str] | None) -> None:
    from alarms._dispatch import NotifyService

    loop = asyncio.get_running_loop()
    async with NotifyService(settings.database_url, config, parks=parks,
                             poll_interval_s=settings.notify_poll_interval_s, batch_size=settings.notify_batch_size,
                             lease_s=settings.notify_lease_s, max_concurrent=settings.notify_max_concurrent) as svc:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, svc.request_stop)
        await svc.wait()


def notify(
    *,
    once: Annotated[bool, typer.Option("--once", help="Run one pass (route, escalate, send what is due), print "
                                                      "what it did and exit (e.g. from cron).")] = False,
    check: Annotated[bool, typer.Option("--check", help="Validate the config, resolve its secrets (never shown), "
                                                        "print channels, lists and routes; send nothing.")] = False,
    config: Annotated[Path | None, typer.Option(help="Notify config YAML (default: PARKPULSE_NOTIFY_CONFIG_FILE).",
                                                dir_okay=False)] = None,
    park: Annotated[str | None, typer.Option(help="Only this park's notifications (default: all parks).")] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """Deliver alarm and 预警 notifications: e-mail, webhook, 企业微信 and 钉钉 robots.

    Retries with backoff, holds messages in quiet hours, escalates unacknowledged critical alarms.

    Runs until Ctrl-C (or SIGTERM) unless --once.
    """
    import psycopg

    from infra.logconfig import configure_logging

    settings = _settings(database_url)
    cfg = _config(config, settings)
    if check:
        _print_config(cfg)
        return
    configure_logging(settings.log_level)
    chosen_park = park or settings.notify_park
    parks = [chosen_park] if chosen_park else None
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:  # fail fast, before any loop
            conn.execute("SELECT 1 FROM notification_outbox LIMIT 0")
        if once:
            report = asyncio.run(_one_pass(settings, cfg, parks))
            console.print(f"notify pass: {report.summary()}", highlight=False)
            if report.failed:
                err_console.print("some deliveries failed for good; see `parkpulse alarms deliveries --park PARK "
                                  "--status failed`")
            return
        asyncio.run(_serve(settings, cfg, parks))
    except psycopg.errors.UndefinedTable:
        err_console.print("[red]error[/]: the notification tables are missing; run `parkpulse db migrate`")
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}; is `parkpulse services up` running?")
        raise typer.Exit(2) from None


def deliveries(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    status: Annotated[Status | None, typer.Option(help="Only pending, sent, failed or cancelled.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """The delivery record of a park's notifications: channel, status, attempts, last error (park time)."""
    from zoneinfo import ZoneInfo

    import psycopg
    from rich.table import Table

    from alarms._notify_store import list_deliveries, park_timezone

    settings = _settings(database_url)
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            tz_name = park_timezone(conn, park)
            if tz_name is None:
                err_console.print(f"[red]error[/]: unknown park {park!r}; list parks with "
                                  "`parkpulse registry park list` and check --park", highlight=False)
                raise typer.Exit(1)
            rows = list_deliveries(conn, park, status=status, limit=limit)
    except psycopg.errors.UndefinedTable:
        err_console.print("[red]error[/]: the notification tables are missing; run `parkpulse db migrate`")
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}; is `parkpulse services up` running?")
        raise typer.Exit(2) from None
    if not rows:
        console.print(f"no deliveries for {park}" + (f" with status {status}" if status else "")
                      + "; notifications are routed by `parkpulse alarms notify`", highlight=False)
        return
    tz = ZoneInfo(tz_name)
    table = Table("id", "message", "sev", "stage", "channel", "status", "tries", "when", "last error",
                  title=f"{park} · deliveries ({tz_name})")
    for r in rows:
        when = r.sent_at or r.next_attempt_at
        label = "sent" if r.sent_at else ("held to" if r.held_until == r.next_attempt_at else "due")
        shown = f"{label} {when.astimezone(tz):%m-%d %H:%M}" if r.status in ("pending", "sent") else ""
        table.add_row(str(r.delivery_id), f"{r.dedupe_key}\n{r.title_en}", r.severity, r.stage,
                      f"{r.channel} ({r.kind})", r.status, str(r.attempts), shown, (r.last_error or "")[:120])
    console.print(table)
