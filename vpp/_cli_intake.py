"""``parkpulse vpp ven2 run`` and ``parkpulse vpp events list|show|policy``: the 2.0b VEN and received events.

Heavy imports (psycopg, openleadr, the flex core) load inside the commands so ``parkpulse --help`` stays
instant. Every listing takes ``--json``.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pydantic import ValidationError

    from vpp._intake_store import IntakeStore

console = Console()
ven2_app = typer.Typer(help="OpenADR 2.0b VEN (openleadr): registration, events, opt-in/out, reports.",
                       no_args_is_help=True)
events_app = typer.Typer(help="DR events received from OpenADR VTNs (every version, opt decisions, reasons).",
                         no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


def _open_store() -> IntakeStore:
    from flex._settings import DrServiceSettings
    from infra.logconfig import configure_logging
    from vpp._intake_store import IntakeStore
    from vpp.errors import IntakeError

    settings = DrServiceSettings()  # type: ignore[call-arg]
    configure_logging(settings.log_level)
    try:
        return IntakeStore(settings.database_url)
    except IntakeError as exc:
        raise _fail(str(exc)) from None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


@ven2_app.command("run")
def run(
    park: Annotated[str | None, typer.Option(help="park this VEN serves (default PARKPULSE_VEN2_PARK_ID)")] = None,
    vtn_url: Annotated[str | None, typer.Option(help="VTN 2.0b base URL (default PARKPULSE_VEN2_VTN_URL)")] = None,
    ven_name: Annotated[str | None, typer.Option(help="VEN name (default PARKPULSE_VEN2_VEN_NAME)")] = None,
    poll_s: Annotated[float | None, typer.Option(help="poll every N s instead of the VTN's frequency")] = None,
) -> None:
    """Run the OpenADR 2.0b VEN until Ctrl-C: events go through the intake, reports come from flex.

    Settings, from the environment or .cache/services.env:

    * required: PARKPULSE_DATABASE_URL, PARKPULSE_VEN2_VTN_URL, PARKPULSE_VEN2_PARK_ID

    * identity: PARKPULSE_VEN2_VEN_NAME, _VEN_ID, _RESOURCE_ID

    * security: PARKPULSE_VEN2_CERT and _KEY (both or none), _PASSPHRASE, _CA_FILE, _VTN_FINGERPRINT, _CHECK_HOSTNAME

    * timing (s): PARKPULSE_VEN2_POLL_INTERVAL, _REPORT_MIN_INTERVAL

    * registration retries (s): PARKPULSE_VEN2_REGISTER_BACKOFF_INITIAL_S, _REGISTER_BACKOFF_MAX_S
    """
    import asyncio

    from pydantic import ValidationError

    from flex import DrService, DrStore
    from infra.logconfig import configure_logging
    from vpp._intake import EventIntake, open_intake
    from vpp._oadr2 import Oadr2Ven
    from vpp._oadr2_settings import Oadr2Settings
    from vpp._oadr2_values import FlexReportValues
    from vpp.errors import VppError

    overrides: dict[str, Any] = {k: v for k, v in {"park_id": park, "vtn_url": vtn_url, "ven_name": ven_name}.items()
                                 if v is not None}
    if poll_s is not None:
        overrides["poll_interval"] = timedelta(seconds=poll_s)
    try:
        settings = Oadr2Settings(**overrides)
    except ValidationError as exc:
        raise _fail(f"VEN settings incomplete or invalid: {_settings_problems(exc)}. Set them in the environment "
                    "or .cache/services.env (--vtn-url and --park override); `parkpulse vpp ven2 run --help` "
                    "lists every setting") from None
    configure_logging(settings.log_level)

    failures: list[str] = []

    async def main() -> None:
        dr_store = DrStore(settings.database_url)
        service = DrService(dr_store)
        intake: EventIntake
        intake, close = open_intake(settings.database_url, service=service)
        try:
            async with Oadr2Ven(settings, intake, FlexReportValues(service)) as ven:
                await ven.wait_registered()
                console.print(f"registered with {ven.vtn_id} as {ven.ven_id}; Ctrl-C stops")
                await asyncio.Event().wait()
        except* VppError as group:  # raised inside the VEN's task group (bad certificate files, ...)
            failures.extend(str(e) for e in group.exceptions)
        finally:
            close()
            dr_store.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        console.print("stopped")
    if failures:
        raise _fail("; ".join(failures))


@events_app.command("list")
def list_events(
    park: Annotated[str | None, typer.Option(help="only this park's events")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Received events (version in force), latest start first, with the opt decision and its reason."""
    from rich.table import Table

    store = _open_store()
    try:
        events, total = store.list_events(park, limit=limit)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"total": total, "events": [e.as_json() for e in events]}))
        return
    table = Table("id", "park", "v", "status", "start (UTC)", "dir", "requested kW", "committed kW", "opt", "reason")
    for e in events:
        table.add_row(e.dr_event_id, e.park_id, str(e.modification_number), e.vtn_status,
                      e.start.strftime("%Y-%m-%d %H:%M") if e.start else "—", e.direction, _fmt(e.requested_kw),
                      _fmt(e.committed_kw), e.opt, e.opt_reason or "")
    console.print(table)
    console.print(f"{len(events)} of {total} event(s)")


@events_app.command("show")
def show(
    event_id: Annotated[str, typer.Argument(help="ParkPulse DR event id (see `parkpulse vpp events list`)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One event: the version in force, its intervals and every version received."""
    from rich.table import Table

    store = _open_store()
    try:
        found = store.get(event_id)
        versions = store.versions(event_id) if found else []
    finally:
        store.close()
    if found is None:
        raise _fail(f"no received event {event_id!r}: list them with `parkpulse vpp events list`")
    if as_json:
        typer.echo(json.dumps({**found.as_json(), "versions": [v.as_json() for v in versions]}))
        return
    console.print(f"{found.dr_event_id}: {found.source} event {found.vtn_event_id} from {found.vtn_id} for park "
                  f"{found.park_id}, version {found.modification_number} ({found.vtn_status}); signal "
                  f"{found.signal_name} ({found.signal_kind}), {found.direction}; requested "
                  f"{_fmt(found.requested_kw)} kW, committed {_fmt(found.committed_kw)} kW: {found.opt}"
                  + (f" — {found.opt_reason}" if found.opt_reason else ""))
    intervals = Table("start (UTC)", "duration s", "value", "unit")
    for i in found.intervals:
        intervals.add_row(str(i["start"]), f"{i['duration_s']:.0f}", f"{i['value']:g}", str(i["unit"]))
    console.print(intervals)
    history = Table("received (UTC)", "version", "action", "opt", "reason")
    for v in versions:
        history.add_row(v.received_at.isoformat(), str(v.modification_number), v.action, v.opt or "",
                        v.opt_reason or "")
    console.print(history)


@events_app.command("policy")
def policy(
    park: Annotated[str, typer.Option(help="park id")],
    *,
    flex_margin: Annotated[float | None, typer.Option(help="opt in only if requested <= available x margin")] = None,
    min_notice_min: Annotated[float | None, typer.Option(help="minimum notice in minutes")] = None,
    day_types: Annotated[str | None, typer.Option(help="comma list of day types taking part, e.g. workday")] = None,
    hours: Annotated[str | None, typer.Option(help="local hours taking part, FROM-TO, e.g. 8-22")] = None,
    max_duration_h: Annotated[float | None, typer.Option(help="longest event accepted, hours")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a park's intake policy, or change the given keys (the rest keep their values)."""
    from pydantic import ValidationError

    from vpp._intake_policy import IntakePolicy
    from vpp.errors import IntakeError

    changes: dict[str, Any] = {}
    if flex_margin is not None:
        changes["flex_margin"] = flex_margin
    if min_notice_min is not None:
        changes["min_notice"] = timedelta(minutes=min_notice_min)
    if day_types is not None:
        changes["allowed_day_types"] = tuple(d.strip() for d in day_types.split(",") if d.strip())
    if hours is not None:
        low, _, high = hours.partition("-")
        if not (low.strip().isdigit() and high.strip().isdigit()):
            raise _fail(f"--hours must look like 8-22, got {hours!r}")
        changes["local_hours"] = (int(low), int(high))
    if max_duration_h is not None:
        changes["max_duration"] = timedelta(hours=max_duration_h)
    store = _open_store()
    try:
        current = store.get_policy(park) or IntakePolicy()
        if changes:
            try:
                current = IntakePolicy.model_validate({**current.model_dump(), **changes})
            except ValidationError as exc:
                raise _fail(f"invalid policy: {exc.errors()[0]['msg']}") from None
            try:
                store.put_policy(park, current)
            except IntakeError as exc:
                raise _fail(str(exc)) from None
    finally:
        store.close()
    doc = current.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps({"park_id": park, "policy": doc}))
        return
    for key, value in doc.items():
        console.print(f"{key}: {value}")


def register(app: typer.Typer) -> None:
    """Add ``ven2`` and ``events`` to ``parkpulse vpp``."""
    app.add_typer(ven2_app, name="ven2")
    app.add_typer(events_app, name="events")


def _settings_problems(exc: ValidationError) -> str:
    """Each settings error as the variable to set and what is wrong with it."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = field if field.startswith("PARKPULSE_") else f"PARKPULSE_VEN2_{field.upper()}" if field else ""
        message = "missing" if error["type"] == "missing" else str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "; ".join(problems)
