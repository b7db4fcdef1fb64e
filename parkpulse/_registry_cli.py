"""``parkpulse registry``: the parks and devices that ingest accepts readings for.

Ingest stores readings only for registered devices of registered parks, or for any device of a park set
to auto-register; everything else is quarantined as ``unregistered`` until the operator registers the
sender and replays it (``parkpulse quarantine replay``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

registry_app = typer.Typer(help="Parks and devices that ingest accepts readings for.", no_args_is_help=True)
park_app = typer.Typer(help="Registered parks.", no_args_is_help=True)
device_app = typer.Typer(help="Registered devices of a park.", no_args_is_help=True)
registry_app.add_typer(park_app, name="park")
registry_app.add_typer(device_app, name="device")

DbOption = Annotated[str | None, typer.Option("--database-url", help="Database URL (default: settings)")]
FormatOption = Annotated[str, typer.Option("--format", help="table or json")]


def _connect(database_url: str | None) -> Any:
    import psycopg

    from infra.settings import ServiceSettings

    url = database_url or ServiceSettings().database_url  # type: ignore[call-arg]
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise typer.BadParameter(f"cannot reach the database ({exc}); start it with `parkpulse services up` "
                                 "or set PARKPULSE_DATABASE_URL", param_hint="--database-url") from None


def _print(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if fmt != "table":
        raise typer.BadParameter(f"unknown format {fmt!r}; use table or json", param_hint="--format")
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    Console().print(table)


@park_app.command("add")
def park_add(
    park_id: Annotated[str, typer.Argument(help="Park id ([a-z0-9][a-z0-9_-]{0,63})")],
    *,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone (default Asia/Shanghai)")] = None,
    province: Annotated[str | None, typer.Option(help="Province (selects emission factors)")] = None,
    grid_region: Annotated[str | None, typer.Option(help="Grid region (factor fallback)")] = None,
    auto_register: Annotated[bool | None, typer.Option(
        "--auto-register/--no-auto-register",
        help="Accept readings of devices not registered yet (registering them on first sight)")] = None,
    database_url: DbOption = None,
) -> None:
    """Register a park, or update the attributes given for a registered one."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from infra.db import register_park
    from schemas import is_valid_id

    if not is_valid_id(park_id):
        raise typer.BadParameter(f"{park_id!r} is not a valid id: lower-case [a-z0-9][a-z0-9_-]{{0,63}}",
                                 param_hint="PARK_ID")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise typer.BadParameter(f"unknown time zone {timezone!r}; use an IANA name such as Asia/Shanghai",
                                     param_hint="--timezone") from None
    with _connect(database_url) as conn:
        created = register_park(conn, park_id, name=name, timezone=timezone, province=province,
                                grid_region=grid_region, auto_register=auto_register)
    typer.echo(f"park {park_id} {'registered' if created else 'updated'}")


@park_app.command("list")
def park_list(fmt: FormatOption = "table", database_url: DbOption = None) -> None:
    """Every registered park, with its auto-register flag and device count."""
    from infra.db import list_parks

    with _connect(database_url) as conn:
        rows = list_parks(conn)
    _print(rows, fmt, ["park_id", "name", "timezone", "province", "auto_register", "devices"])


@device_app.command("add")
def device_add(
    park_id: Annotated[str, typer.Argument(help="A registered park")],
    device_id: Annotated[str, typer.Argument(help="Device id ([a-z0-9][a-z0-9_-]{0,63}), as in its MQTT topic")],
    *,
    kind: Annotated[str | None, typer.Option(help="electricity_meter, gas_meter, pv_inverter, battery ...")] = None,
    carrier: Annotated[str | None, typer.Option(help="electricity, gas, heat, cooling, water, steam, none")] = None,
    metering_level: Annotated[int | None, typer.Option(min=1, max=3, help="GB 17167 level 1, 2 or 3")] = None,
    site: Annotated[str | None, typer.Option(help="Site id inside the park")] = None,
    role: Annotated[str | None, typer.Option(help="park_boundary, dc_it, pv ...")] = None,
    register_max: Annotated[float | None, typer.Option(min=0, help="Register maximum before it wraps")] = None,
    multiplier: Annotated[float | None, typer.Option(min=0, help="CT x PT ratio, for audit")] = None,
    database_url: DbOption = None,
) -> None:
    """Register a device of a registered park (or update what is given)."""
    from infra.db import DeviceRegistration, RegistryError, register_device
    from schemas import is_valid_id

    if not is_valid_id(device_id):
        raise typer.BadParameter(f"{device_id!r} is not a valid id: lower-case [a-z0-9][a-z0-9_-]{{0,63}}",
                                 param_hint="DEVICE_ID")
    with _connect(database_url) as conn:
        try:
            created = register_device(conn, DeviceRegistration(
                park_id, device_id, kind=kind, carrier=carrier, metering_level=metering_level, site_id=site,
                role=role, register_max=register_max, multiplier=multiplier))
        except RegistryError as exc:
            raise typer.BadParameter(str(exc), param_hint="PARK_ID") from None
    typer.echo(f"device {park_id}/{device_id} {'registered' if created else 'updated'}")


@device_app.command("list")
def device_list(park_id: Annotated[str, typer.Argument(help="Park id")], fmt: FormatOption = "table",
                database_url: DbOption = None) -> None:
    """The devices of one park, how they were registered, and when each was last seen."""
    from infra.db import list_devices

    with _connect(database_url) as conn:
        rows = list_devices(conn, park_id)
    _print(rows, fmt, ["device_id", "kind", "carrier", "metering_level", "site_id", "role", "registered_by",
                       "last_seen_at"])
