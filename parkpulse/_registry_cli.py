"""``parkpulse registry``: the parks, sites and devices of the operator's asset registry.

Ingest stores readings only for registered devices of registered parks, or for any device of a park set
to auto-register; everything else is quarantined as ``unregistered`` until the operator registers the
sender and replays it (``parkpulse quarantine replay``). Aggregation reads each device's metering level,
carrier, role and site from here, so a meter whose history arrives by CSV needs them registered.

Device attributes the operator sets here always win over the device's own birth message; the ones left
unset are filled by the birth (``infra/db/_registry.py`` states the rule). ``registry import`` and
``registry export`` (:mod:`parkpulse._registry_file_cli`) move a whole park through one YAML or CSV file.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from parkpulse._registry_file_cli import export_registry, import_registry

if TYPE_CHECKING:
    import psycopg
    from pydantic import BaseModel

registry_app = typer.Typer(help="Parks, sites and devices: add, update, import and export the registry ingest and "
                           "aggregation use.", no_args_is_help=True)
park_app = typer.Typer(help="Registered parks.", no_args_is_help=True)
site_app = typer.Typer(help="Sites (buildings, workshops, stations, data centres) of a park.", no_args_is_help=True)
device_app = typer.Typer(help="Registered devices of a park.", no_args_is_help=True)
registry_app.add_typer(park_app, name="park")
registry_app.add_typer(site_app, name="site")
registry_app.add_typer(device_app, name="device")
registry_app.command("export")(export_registry)
registry_app.command("import")(import_registry)

DbOption = Annotated[str | None, typer.Option("--database-url", help="Database URL (default: settings)")]
FormatOption = Annotated[str, typer.Option("--format", help="table or json")]
ParkArg = Annotated[str, typer.Argument(help="Park id ([a-z0-9][a-z0-9_-]{0,63})")]
SiteArg = Annotated[str, typer.Argument(help="Site id inside the park")]
DeviceArg = Annotated[str, typer.Argument(help="Device id ([a-z0-9][a-z0-9_-]{0,63}), as in its MQTT topic")]
Name = Annotated[str | None, typer.Option(help="Display name")]
# Park attributes
Timezone = Annotated[str | None, typer.Option(help="IANA time zone (default Asia/Shanghai)")]
Province = Annotated[str | None, typer.Option(help="Province, e.g. 广东 (selects emission factors)")]
GridRegion = Annotated[str | None, typer.Option(help="Grid region, e.g. 南方 (factor fallback)")]
AutoRegister = Annotated[bool | None, typer.Option(
    "--auto-register/--no-auto-register",
    help="Accept readings of devices not registered yet (registering them on first sight)")]
# Site attributes
SiteKind = Annotated[str | None, typer.Option("--kind", help="building, workshop, warehouse, data_centre, station, "
                                                             "other")]
FloorArea = Annotated[float | None, typer.Option(help="Floor area in m² (energy per floor area)")]
RoofArea = Annotated[float | None, typer.Option(help="Roof area in m² (rooftop-PV coverage)")]
PublicBuilding = Annotated[bool | None, typer.Option("--public-building/--no-public-building",
                                                     help="Counts in 公共建筑单位面积能耗")]
# Device attributes
Kind = Annotated[str | None, typer.Option(help="electricity_meter, gas_meter, heat_meter, pv_inverter, battery …")]
Carrier = Annotated[str | None, typer.Option(help="electricity, gas, heat, cooling, water, steam, none")]
Level = Annotated[int | None, typer.Option(help="GB 17167 metering level 1, 2 or 3")]
Site = Annotated[str | None, typer.Option(help="Site id inside the park (register the site first)")]
Role = Annotated[str | None, typer.Option(help="park_boundary, dc_facility, dc_it, pv, public_building …")]
RegisterMax = Annotated[float | None, typer.Option(help="Register maximum before it wraps (canonical unit)")]
Multiplier = Annotated[float | None, typer.Option(help="CT × PT ratio (> 0) of a secondary-metered meter")]
RatedPower = Annotated[float | None, typer.Option(help="Rated power in kW (plausibility limits)")]
Profile = Annotated[str | None, typer.Option(help="Device profile (register map) name")]
Unset = Annotated[list[str] | None, typer.Option(
    "--unset", help="Hand an attribute back to the device's birth message (repeatable), e.g. --unset role")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the caller raises the returned exit (status 1)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def connect(database_url: str | None) -> psycopg.Connection[Any]:
    """An autocommit connection, or a usage error saying how to start or point at the database."""
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
        table.add_row(*("" if row.get(c) is None else ", ".join(row[c]) if isinstance(row[c], list) else str(row[c])
                        for c in columns))
    Console().print(table)


def _show(row: dict[str, Any], fmt: str, sources: dict[str, str] | None = None) -> None:
    if fmt == "json":
        typer.echo(json.dumps(row, ensure_ascii=False, indent=2, default=str))
        return
    if fmt != "table":
        raise typer.BadParameter(f"unknown format {fmt!r}; use table or json", param_hint="--format")
    width = max(map(len, row))
    for key, value in row.items():
        shown = "" if value is None else ", ".join(value) if isinstance(value, list) else str(value)
        source = f"   ({sources[key]})" if sources and key in sources else ""
        typer.echo(f"{key:<{width}}  {shown}{source}")


def validated(model: type[BaseModel], given: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    """``given`` (the options set, None dropped) checked by ``model``; a usage error names the option."""
    from pydantic import ValidationError

    values = {k: v for k, v in given.items() if v is not None}
    try:
        checked = model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise typer.BadParameter(str(first["msg"]), param_hint=options.get(name, name)) from None
    return {k: getattr(checked, k) for k in values}


def _check_id(value: str, hint: str) -> None:
    from schemas import is_valid_id

    if not is_valid_id(value) or value != value.strip():
        raise typer.BadParameter(f"{value!r} is not a valid id: lower-case [a-z0-9][a-z0-9_-]{{0,63}}",
                                 param_hint=hint)


def _save(what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    from infra.db import RegistryError

    try:
        created = fn(*args, **kwargs)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{what} {'registered' if created else 'updated'}")


# --- parks ----------------------------------------------------------------------------------------------

def _park_fields(name: str | None, timezone: str | None, province: str | None, grid_region: str | None,
                 auto_register: bool | None) -> dict[str, Any]:
    from schemas.registry import ParkFields

    return validated(ParkFields, {"name": name, "timezone": timezone, "province": province,
                                  "grid_region": grid_region, "auto_register": auto_register},
                     {"timezone": "--timezone", "name": "--name", "province": "--province",
                      "grid_region": "--grid-region"})


@park_app.command("add")
def park_add(park_id: ParkArg, *, name: Name = None, timezone: Timezone = None, province: Province = None,
             grid_region: GridRegion = None, auto_register: AutoRegister = None,
             database_url: DbOption = None) -> None:
    """Register a park, or update the attributes given for a registered one."""
    from infra.db import save_park

    _check_id(park_id, "PARK_ID")
    fields = _park_fields(name, timezone, province, grid_region, auto_register)
    with connect(database_url) as conn:
        _save(f"park {park_id}", save_park, conn, park_id, fields)


@park_app.command("update")
def park_update(park_id: ParkArg, *, name: Name = None, timezone: Timezone = None, province: Province = None,
                grid_region: GridRegion = None, auto_register: AutoRegister = None,
                database_url: DbOption = None) -> None:
    """Change only the attributes given of a registered park."""
    from infra.db import save_park

    fields = _park_fields(name, timezone, province, grid_region, auto_register)
    if not fields:
        raise typer.BadParameter("give at least one attribute to change, e.g. --province 广东")
    with connect(database_url) as conn:
        _save(f"park {park_id}", save_park, conn, park_id, fields, mode="update")


@park_app.command("list")
def park_list(fmt: FormatOption = "table", database_url: DbOption = None) -> None:
    """Every registered park, with its auto-register flag and its site and device counts."""
    from infra.db import list_parks

    with connect(database_url) as conn:
        rows = list_parks(conn)
    _print(rows, fmt, ["park_id", "name", "timezone", "province", "grid_region", "auto_register", "sites", "devices"])


@park_app.command("show")
def park_show(park_id: ParkArg, fmt: FormatOption = "table", database_url: DbOption = None) -> None:
    """One park's attributes and counts."""
    from infra.db import RegistryError, get_park

    with connect(database_url) as conn:
        try:
            row = get_park(conn, park_id)
        except RegistryError as exc:
            raise fail(str(exc)) from None
    _show(row, fmt)


# --- sites ----------------------------------------------------------------------------------------------

def _site_fields(name: str | None, kind: str | None, floor_area_m2: float | None, roof_area_m2: float | None,
                 public_building: bool | None) -> dict[str, Any]:
    from schemas.registry import SiteFields

    return validated(SiteFields, {"name": name, "kind": kind, "floor_area_m2": floor_area_m2,
                                  "roof_area_m2": roof_area_m2, "is_public_building": public_building},
                     {"kind": "--kind", "floor_area_m2": "--floor-area-m2", "roof_area_m2": "--roof-area-m2",
                      "name": "--name"})


@site_app.command("add")
def site_add(park_id: ParkArg, site_id: SiteArg, *, name: Name = None, kind: SiteKind = None,
             floor_area_m2: FloorArea = None, roof_area_m2: RoofArea = None, public_building: PublicBuilding = None,
             database_url: DbOption = None) -> None:
    """Register a site of a registered park, or update the attributes given."""
    from infra.db import save_site

    _check_id(site_id, "SITE_ID")
    fields = _site_fields(name, kind, floor_area_m2, roof_area_m2, public_building)
    with connect(database_url) as conn:
        _save(f"site {park_id}/{site_id}", save_site, conn, park_id, site_id, fields)


@site_app.command("update")
def site_update(park_id: ParkArg, site_id: SiteArg, *, name: Name = None, kind: SiteKind = None,
                floor_area_m2: FloorArea = None, roof_area_m2: RoofArea = None,
                public_building: PublicBuilding = None, database_url: DbOption = None) -> None:
    """Change only the attributes given of a registered site."""
    from infra.db import save_site

    fields = _site_fields(name, kind, floor_area_m2, roof_area_m2, public_building)
    if not fields:
        raise typer.BadParameter("give at least one attribute to change, e.g. --floor-area-m2 12000")
    with connect(database_url) as conn:
        _save(f"site {park_id}/{site_id}", save_site, conn, park_id, site_id, fields, mode="update")


@site_app.command("list")
def site_list(park_id: ParkArg, fmt: FormatOption = "table", database_url: DbOption = None) -> None:
    """The sites of one park with their areas and device counts."""
    from infra.db import list_sites

    with connect(database_url) as conn:
        rows = list_sites(conn, park_id)
    _print(rows, fmt, ["site_id", "name", "kind", "floor_area_m2", "roof_area_m2", "is_public_building", "devices"])


@site_app.command("show")
def site_show(park_id: ParkArg, site_id: SiteArg, fmt: FormatOption = "table", database_url: DbOption = None) -> None:
    """One site's attributes."""
    from infra.db import RegistryError, get_site

    with connect(database_url) as conn:
        try:
            row = get_site(conn, park_id, site_id)
        except RegistryError as exc:
            raise fail(str(exc)) from None
    _show(row, fmt)


# --- devices --------------------------------------------------------------------------------------------

def _device_fields(given: dict[str, Any], unset: list[str] | None) -> dict[str, Any]:
    from schemas.registry import DEVICE_FIELDS, DeviceFields

    fields = validated(DeviceFields, given, {k: f"--{k.replace('_', '-')}" for k in DEVICE_FIELDS} |
                       {"site_id": "--site"})
    for name in unset or []:
        key = name.strip().replace("-", "_")
        key = "site_id" if key == "site" else key
        if key not in DEVICE_FIELDS:
            raise typer.BadParameter(f"{name!r} is not a device attribute; use one of {', '.join(DEVICE_FIELDS)}",
                                     param_hint="--unset")
        if key in fields:
            raise typer.BadParameter(f"{name!r} is both set and unset; choose one", param_hint="--unset")
        fields[key] = None
    return fields


@device_app.command("add")
def device_add(park_id: ParkArg, device_id: DeviceArg, *, kind: Kind = None, carrier: Carrier = None,
               metering_level: Level = None, site: Site = None, role: Role = None, register_max: RegisterMax = None,
               multiplier: Multiplier = None, rated_power_kw: RatedPower = None, profile: Profile = None,
               database_url: DbOption = None) -> None:
    """Register a device of a registered park (or update what is given).

    The attributes given are the operator's: the device's birth message never overrides them.
    Those not given are filled by the birth.
    """
    from infra.db import save_device

    _check_id(device_id, "DEVICE_ID")
    fields = _device_fields({"kind": kind, "carrier": carrier, "metering_level": metering_level, "site_id": site,
                             "role": role, "register_max": register_max, "multiplier": multiplier,
                             "rated_power_kw": rated_power_kw, "profile": profile}, None)
    with connect(database_url) as conn:
        _save(f"device {park_id}/{device_id}", save_device, conn, park_id, device_id, fields)


@device_app.command("update")
def device_update(park_id: ParkArg, device_id: DeviceArg, *, kind: Kind = None, carrier: Carrier = None,
                  metering_level: Level = None, site: Site = None, role: Role = None,
                  register_max: RegisterMax = None, multiplier: Multiplier = None, rated_power_kw: RatedPower = None,
                  profile: Profile = None, unset: Unset = None, database_url: DbOption = None) -> None:
    """Change only the attributes given of a registered device (``--unset F`` hands F back to the device)."""
    from infra.db import save_device

    fields = _device_fields({"kind": kind, "carrier": carrier, "metering_level": metering_level, "site_id": site,
                             "role": role, "register_max": register_max, "multiplier": multiplier,
                             "rated_power_kw": rated_power_kw, "profile": profile}, unset)
    if not fields:
        raise typer.BadParameter("give at least one attribute to change, e.g. --metering-level 2, or --unset F")
    with connect(database_url) as conn:
        _save(f"device {park_id}/{device_id}", save_device, conn, park_id, device_id, fields, mode="update")


@device_app.command("list")
def device_list(park_id: ParkArg, fmt: FormatOption = "table", database_url: DbOption = None) -> None:
    """The devices of one park: attributes (* set by the operator), and when each was last seen."""
    from infra.db import list_devices

    with connect(database_url) as conn:
        rows = list_devices(conn, park_id)
    columns = ["device_id", "kind", "carrier", "metering_level", "site_id", "role", "multiplier", "registered_by",
               "last_seen_at"]
    if fmt == "table":
        rows = [{k: f"{v} *" if k in row["operator_fields"] and v is not None else v for k, v in row.items()}
                for row in rows]
    _print(rows, fmt, columns)
    if fmt == "table" and rows:
        typer.echo("* set by the operator (a birth message never changes it); the others come from the device")


@device_app.command("show")
def device_show(park_id: ParkArg, device_id: DeviceArg, fmt: FormatOption = "table",
                database_url: DbOption = None) -> None:
    """One device: each attribute with who set it (operator, or the device's birth message)."""
    from infra.db import RegistryError, get_device
    from schemas.registry import DEVICE_FIELDS

    with connect(database_url) as conn:
        try:
            row = get_device(conn, park_id, device_id)
        except RegistryError as exc:
            raise fail(str(exc)) from None
    owned = set(row["operator_fields"])
    _show(row, fmt, {f: "operator" if f in owned else "birth message" if row["birth_at"]
                     else "default" if row[f] is not None else "not set" for f in DEVICE_FIELDS})
