"""``parkpulse uplink …``: uploads to the energy online-monitoring platforms.

``run`` (the delivery worker, ``--once`` to drain and exit), ``enqueue`` (recompute and queue a window),
``status``, ``rejects``, ``quality`` and ``export``. Heavy imports happen inside the commands so ``--help``
stays fast. The platform simulator (``platform-sim``) lives in ``simulators/platform`` and is mounted on
this group by the top-level CLI.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from uplink._endpoints import EndpointConfig
    from uplink._settings import UplinkSettings

uplink_app = typer.Typer(help="Uploads to the government energy online-monitoring platforms.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

EndpointsOpt = Annotated[Path | None, typer.Option("--endpoints", help="Endpoints YAML file (default: "
                                                   "PARKPULSE_UPLINK_ENDPOINTS_FILE).", dir_okay=False)]
DbOpt = Annotated[str | None, typer.Option(help="Database URL (default: settings).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ParkOpt = Annotated[str, typer.Option(help="Park id.")]
FromOpt = Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")]
ToOpt = Annotated[str, typer.Option("--to", help="Day after the last, YYYY-MM-DD (exclusive).")]


def _setup(database_url: str | None, endpoints_file: Path | None) -> tuple[UplinkSettings, list[EndpointConfig]]:
    from uplink._endpoints import load_endpoints
    from uplink._settings import UplinkSettings
    from uplink.errors import UplinkError

    settings = UplinkSettings(database_url=database_url) if database_url else UplinkSettings()  # type: ignore[call-arg]
    try:
        endpoints = load_endpoints(endpoints_file or settings.uplink_endpoints_file)
    except UplinkError as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    return settings, endpoints


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        err_console.print(f"[red]error[/]: {option} {text!r} is not a date; use YYYY-MM-DD")
        raise typer.Exit(2) from None


def _window(start: str, end: str) -> tuple[date, date]:
    first, last = _day(start, "--from"), _day(end, "--to")
    if last <= first:
        err_console.print("[red]error[/]: --to must be after --from (it is exclusive)")
        raise typer.Exit(2)
    return first, last


def _json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


@uplink_app.command("run")
def run(
    *,
    once: Annotated[bool, typer.Option("--once", help="Drain every queue until empty or the first failure, then "
                                       "exit: 0 all delivered, 1 a failure left records queued.")] = False,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    endpoints_file: EndpointsOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Deliver the queued records to every configured platform endpoint (until interrupted)."""
    from infra.logconfig import configure_logging
    from uplink._worker import UplinkWorker

    configure_logging(log_level)
    settings, endpoints = _setup(database_url, endpoints_file)
    if endpoint is not None:
        endpoints = [e for e in endpoints if e.name == endpoint]
        if not endpoints:
            err_console.print(f"[red]error[/]: no endpoint {endpoint!r} in the endpoints file")
            raise typer.Exit(2)
    worker = UplinkWorker(settings.database_url, endpoints, backoff_base_s=settings.uplink_backoff_base_s,
                          backoff_cap_s=settings.uplink_backoff_cap_s, poll_s=settings.uplink_poll_s)
    if once:
        results = asyncio.run(_drain(worker))
        if as_json:
            _json({name: asdict(r) for name, r in results.items()})
        else:
            for name, r in results.items():
                line = f"[bold]{name}[/]: sent {r.sent}, acknowledged {r.acked}, rejected {r.rejected}"
                console.print(line + (f", [red]stopped[/]: {r.error}" if r.error else ""))
        raise typer.Exit(1 if any(r.error for r in results.values()) else 0)
    try:
        asyncio.run(_serve(worker, settings))
    except KeyboardInterrupt:
        return


async def _drain(worker: Any) -> dict[str, Any]:
    async with worker:
        result: dict[str, Any] = await worker.drain_once()
        return result


async def _serve(worker: Any, settings: UplinkSettings) -> None:
    from uplink._metrics import MetricsServer

    server = None
    if settings.uplink_metrics_port is not None:
        server = MetricsServer(worker.metrics, settings.uplink_metrics_host, settings.uplink_metrics_port)
        await server.start()
        err_console.print(f"metrics on http://{settings.uplink_metrics_host}:{server.port}/metrics")
    try:
        async with worker:
            await worker.run()
    finally:
        if server is not None:
            await server.close()


@uplink_app.command("enqueue")
def enqueue(*, park: ParkOpt, start: FromOpt, end: ToOpt, endpoints_file: EndpointsOpt = None,
            database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute a park's records for a window and queue new or changed ones for its endpoints."""
    from uplink._enqueue import enqueue_range
    from uplink.errors import UplinkError

    first, last = _window(start, end)
    settings, endpoints = _setup(database_url, endpoints_file)
    try:
        report = enqueue_range(settings.database_url, endpoints, park, first, last)
    except UplinkError as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        _json(asdict(report))
    else:
        console.print(f"{park}: {report.new} new, {report.revised} revised, {report.unchanged} unchanged records")


@uplink_app.command("status")
def status(*, endpoints_file: EndpointsOpt = None, database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Per endpoint: backlog, acknowledged, rejected, last acknowledged and oldest unacknowledged record."""
    import psycopg

    from uplink._store import endpoint_status

    settings, endpoints = _setup(database_url, endpoints_file)
    with psycopg.connect(settings.database_url) as conn:
        rows = [endpoint_status(conn, e.name) for e in endpoints]
    if as_json:
        _json([asdict(r) for r in rows])
        return
    for ep, r in zip(endpoints, rows, strict=True):
        console.print(f"[bold]{r.endpoint}[/] ({ep.profile}, park {ep.park}, {ep.base_url}): backlog {r.backlog}, "
                      f"acknowledged {r.acked}, rejected {r.rejected}", soft_wrap=True)
        console.print(f"  last acknowledged: {r.last_acked_key or '—'} at {r.last_acked_at or '—'}", markup=False,
                      soft_wrap=True)
        console.print(f"  oldest unacknowledged: {r.oldest_unacked_key or '—'}"
                      + (f"  last error: {r.last_error}" if r.last_error else ""), markup=False, soft_wrap=True)


@uplink_app.command("rejects")
def rejects(*, endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
            limit: Annotated[int, typer.Option(help="At most this many.", min=1)] = 100,
            endpoints_file: EndpointsOpt = None, database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Records the platforms rejected, with their reasons (fix the data, then `uplink enqueue` re-sends)."""
    import psycopg

    from uplink._store import list_rejects

    settings, _ = _setup(database_url, endpoints_file)
    with psycopg.connect(settings.database_url) as conn:
        rows = list_rejects(conn, endpoint, limit)
    if as_json:
        _json([asdict(r) for r in rows])
        return
    if not rows:
        console.print("no rejected records")
    for r in rows:
        console.print(f"{r.endpoint}  {r.record_key} r{r.revision}  {r.rejected_at}: {r.reason}", markup=False,
                      soft_wrap=True)


@uplink_app.command("quality")
def quality(*, park: ParkOpt, start: FromOpt, end: ToOpt, failed_only: Annotated[bool, typer.Option(
        "--failed-only", help="Only the checks that failed.")] = False, endpoints_file: EndpointsOpt = None,
            database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Check completeness (>= 90 %), daily vs monthly consistency (5 %) and alignment; exit 1 when any fails."""
    import psycopg

    from uplink._quality import list_flags, refresh_quality

    first, last = _window(start, end)
    settings, endpoints = _setup(database_url, endpoints_file)
    failed = refresh_quality(settings.database_url, endpoints, park, first, last, now=datetime.now(UTC))
    with psycopg.connect(settings.database_url) as conn:
        flags = list_flags(conn, park, first, last, failed_only=failed_only)
    if as_json:
        _json({"park": park, "failed": failed, "flags": flags})
    else:
        for f in flags:
            mark = "ok  " if f["passed"] else "FAIL"
            value = "" if f["value"] is None else f" {f['value']:.4g}"
            console.print(f"{mark} {f['day']} {f['profile']} {f['data_item_code']} {f['check']}{value}"
                          + (f" — {f['reason']}" if f["reason"] else ""), markup=False, soft_wrap=True)
        console.print(f"{failed} failed checks")
    raise typer.Exit(1 if failed else 0)


@uplink_app.command("export")
def export(*, park: ParkOpt, start: FromOpt, end: ToOpt,
           profile: Annotated[str, typer.Option(help="Profile whose format to write (national-json, ...).")],
           output: Annotated[Path | None, typer.Option("-o", "--output", help="File (several chunks: FILE-0001.ext, "
                                                       "...); default: standard output.", dir_okay=False)] = None,
           recompute: Annotated[bool, typer.Option(help="Compute from the database instead of the retained records "
                                                   "(what would be sent now).")] = False,
           endpoints_file: EndpointsOpt = None, database_url: DbOpt = None) -> None:
    """Write what was (or would have been) sent for a window, in the profile's request format."""
    from uplink._export import export_bodies
    from uplink.errors import UplinkError

    first, last = _window(start, end)
    settings, endpoints = _setup(database_url, endpoints_file)
    try:
        bodies = export_bodies(settings.database_url, endpoints, park=park, profile=profile, start=first, end=last,
                               recompute=recompute)
    except UplinkError as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from None
    if output is None:
        for body, count in bodies:
            typer.echo(body.decode("utf-8"))
            err_console.print(f"{count} records")
        return
    paths = [output] if len(bodies) == 1 else [output.with_name(f"{output.stem}-{i:04d}{output.suffix}")
                                               for i in range(1, len(bodies) + 1)]
    for path, (body, count) in zip(paths, bodies, strict=True):
        path.write_bytes(body)
        console.print(f"{path}: {count} records", markup=False)
    if not bodies:
        console.print("no records in that window")
