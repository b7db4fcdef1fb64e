"""``parkpulse dr …``: configure DR, register and evaluate events, compute and show capacity, park calendars.

Mount with ``app.add_typer(dr_app, name="dr")``. Every command reads the database URL from the
environment or ``.cache/services.env`` (:class:`flex._settings.DrServiceSettings`) and prints rich tables.
Commands that apply the DR policy take ``--policy FILE`` (else ``PARKPULSE_DR_POLICY_FILE``). Directions
accept the words people use: ``up`` = reduce, 削峰, peak-shaving; ``down`` = increase, 填谷, valley-filling.
The flex core (Polars, psycopg) is imported inside the commands so ``parkpulse --help`` stays instant.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from flex._cli_calendar import calendar_app
from flex._cli_common import DIRECTION_HELP, PolicyOption, aware, console, direction_option, fail, fmt, open_service

if TYPE_CHECKING:
    from flex._event_capacity import CapacityByEvent

dr_app = typer.Typer(
    help="Demand response: flexibility, baselines, events, DR capacity, park calendars. Directions: up = load "
         "reduction (reduce, 削峰, peak-shaving), down = load increase (increase, 填谷, valley-filling).",
    no_args_is_help=True,
)
dr_app.add_typer(calendar_app, name="calendar")


@dr_app.command("presets")
def presets() -> None:
    """List the baseline presets with their source and confidence."""
    from flex._baseline_method import baseline_presets

    table = Table("preset", "title", "confidence", "source")
    for name, method in sorted(baseline_presets().items()):
        table.add_row(name, method.title, method.confidence, method.source)
    console.print(table)


@dr_app.command("settings")
def set_settings(
    park_id: str,
    *,
    import_max_kw: Annotated[float | None, typer.Option(help="park import connection limit")] = None,
    export_max_kw: Annotated[float | None, typer.Option(help="park export connection limit")] = None,
    method: Annotated[str, typer.Option(help="baseline preset")] = "JIANGSU_5WD",
    overrides: Annotated[str | None, typer.Option(help="JSON baseline overrides")] = None,
    duration_h: Annotated[float | None, typer.Option(help="declared-capacity duration")] = None,
) -> None:
    """Set a park's connection limits and baseline method."""
    from flex._baseline_method import baseline_presets
    from flex._records import DrSettings
    from flex.errors import FlexError

    if method not in baseline_presets():
        raise typer.BadParameter(f"unknown preset {method!r}; see `parkpulse dr presets`")
    service, store = open_service()
    with store:
        try:
            service.park(park_id)
            store.put_settings(park_id, DrSettings(import_max_kw, export_max_kw, method,
                                                   json.loads(overrides) if overrides else {}, duration_h))
        except (FlexError, json.JSONDecodeError) as exc:
            raise fail(exc) from None
    console.print(f"settings of {park_id} saved")


@dr_app.command("add-asset")
def add_asset(
    park_id: str,
    file: Annotated[Path, typer.Argument(help="YAML or JSON asset (flex model, with 'kind')")],
    device_id: Annotated[str | None, typer.Option(help="device whose readings give the live state")] = None,
    ev_dwell_h: Annotated[float | None, typer.Option(help="EV: expected hours from plug-in to departure")] = None,
) -> None:
    """Create or replace a flexible asset from a file."""
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from flex._assets import Asset
    from flex._records import AssetRecord
    from flex.errors import FlexError

    try:
        asset = TypeAdapter(Asset).validate_python(yaml.safe_load(file.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise fail(exc) from None
    options: dict[str, Any] = {"ev_dwell_h": ev_dwell_h} if ev_dwell_h is not None else {}
    service, store = open_service()
    with store:
        try:
            service.park(park_id)
        except FlexError as exc:
            raise fail(exc) from None
        store.put_asset(park_id, AssetRecord(asset, device_id=device_id, state_at=datetime.now(UTC), options=options))
    console.print(f"asset {asset.asset_id} ({asset.kind}) saved in {park_id}")


@dr_app.command("flex")
def show_flex(park_id: str, policy: PolicyOption = None) -> None:
    """Show current flexibility per duration and per asset (up = load reduction 削峰, down = increase 填谷)."""
    from flex.errors import FlexError

    service, store = open_service(policy)
    with store:
        try:
            current = service.current_flex(park_id)
        except FlexError as exc:
            raise fail(exc) from None
    table = Table("duration", "up kW (削峰)", "down kW (填谷)", "Σ up kW", "Σ down kW", "derating up", "limited by",
                  title=f"{park_id} flexibility at {current.as_of:%Y-%m-%d %H:%M} UTC")
    for f in current.durations:
        table.add_row(f"{f.duration_h:g} h", fmt(f.up_kw), fmt(f.down_kw), fmt(f.up_sum_kw), fmt(f.down_sum_kw),
                      f"{f.derating_up:.2f}", ", ".join(f.limited_by) or "—")
    console.print(table)
    assets = Table("asset", "kind", "state from", "state at")
    for r in current.assets:
        when = f"{r.state_at:%Y-%m-%d %H:%M}" if r.state_at else "—"
        assets.add_row(r.asset.asset_id, r.asset.kind, r.state_source, when)
    console.print(assets)


@dr_app.command("register-event")
def register_event(
    park_id: str,
    *,
    start: Annotated[str, typer.Option(help="ISO 8601 with offset, on the 15-min grid")],
    requested_kw: Annotated[float, typer.Option(help="requested reduction (or increase) in kW")],
    end: Annotated[str | None, typer.Option(help="ISO 8601 with offset")] = None,
    hours: Annotated[float | None, typer.Option(help="duration instead of --end")] = None,
    direction: Annotated[str, typer.Option(help=DIRECTION_HELP)] = "up",
    declared_kw: Annotated[float | None, typer.Option(help="default: current derated flexibility")] = None,
    method: Annotated[str | None, typer.Option(help="baseline preset (default: the park's)")] = None,
    notified_at: Annotated[str | None, typer.Option(help="when the utility notified the event")] = None,
    event_id: Annotated[str | None, typer.Option(help="id (default: random)")] = None,
    program_id: Annotated[str | None, typer.Option(help="OpenADR program id")] = None,
    policy: PolicyOption = None,
) -> None:
    """Register a DR event (the direction accepts reduce/削峰/peak-shaving and increase/填谷/valley-filling)."""
    from pydantic import ValidationError

    from flex._baseline import EventWindow
    from flex.errors import FlexError

    parsed = direction_option(direction)
    assert parsed is not None
    begin = aware(start, "--start")
    if (end is None) == (hours is None):
        raise typer.BadParameter("give exactly one of --end and --hours")
    finish = aware(end, "--end") if end is not None else begin + timedelta(hours=hours or 0)
    service, store = open_service(policy)
    with store:
        try:
            event = service.register_event(
                park_id, EventWindow(begin, finish), direction=parsed, requested_kw=requested_kw,
                declared_kw=declared_kw, method=method, event_id=event_id, program_id=program_id,
                notified_at=aware(notified_at, "--notified-at") if notified_at else None, source="cli",
            )
        except (FlexError, ValidationError) as exc:
            raise fail(exc) from None
    console.print(f"registered event [bold]{event.event_id}[/bold] ({event.direction.label}, "
                  f"{event.requested_kw:g} kW requested, {fmt(event.declared_kw, ' kW')} declared)")


@dr_app.command("evaluate")
def evaluate(event_id: str, policy: PolicyOption = None) -> None:
    """Run measurement and verification for a finished event and store the result.

    The settlement bands and the data-quality gate come from the DR policy (--policy FILE).
    """
    from flex.errors import FlexError

    service, store = open_service(policy)
    with store:
        try:
            result = service.evaluate(event_id)
            event = service.repo.get_event(event_id)
        except FlexError as exc:
            raise fail(exc) from None
    table = Table("quantity", "value", title=f"event {event_id}")
    for label, value in (("direction", event.direction.label if event else "—"),
                         ("baseline method", result.baseline_method),
                         ("delivered", fmt(result.delivered_kwh, " kWh")),
                         ("average reduction", fmt(result.avg_reduction_kw, " kW")),
                         ("minimum interval", fmt(result.min_reduction_kw, " kW")),
                         ("ratio to request", f"{result.ratio_requested:.2f}"),
                         ("band", result.band or "—"),
                         ("estimated share", f"{result.estimated_share_event:.0%} event / "
                                             f"{result.estimated_share_baseline:.0%} baseline"),
                         ("quality", "ok" if result.quality_ok else "; ".join(result.quality_reasons)),
                         ("baseline days", ", ".join(d.isoformat() for d in result.baseline_days))):
        table.add_row(label, value)
    console.print(table)


@dr_app.command("capacity")
def capacity(
    park_id: str,
    *,
    save: Annotated[bool, typer.Option(help="append the summary to the history")] = True,
    by_event: Annotated[bool, typer.Option(help="also show every evaluated event under every baseline method")] = (
        True
    ),
    method: Annotated[list[str] | None, typer.Option(
        help="baseline preset for the per-event table (repeat; default: every preset, see `parkpulse dr presets`)"
    )] = None,
    direction: Annotated[str | None, typer.Option(help=f"only events of this direction ({DIRECTION_HELP})")] = None,
    policy: PolicyOption = None,
) -> None:
    """Compute DR capacity (% of annual max demand): the summary, then every event under every baseline method.

    The summary is declared and verified capacity per direction (appended to the history). The per-event
    tables show each evaluated event's average reduction under every baseline method in kW and % of the annual
    maximum 15-min demand; * marks the method of the event's stored evaluation, which the summary counts.
    """
    from flex.errors import FlexError

    only = direction_option(direction)
    service, store = open_service(policy)
    with store:
        try:
            rows = service.capacity(park_id, persist=save)
            table_by_event = service.capacity_by_event(park_id, now=rows[0].as_of, methods=method or None,
                                                       direction=only) if by_event else None
        except FlexError as exc:
            raise fail(exc) from None
    first = rows[0]
    table = Table(Column("direction", min_width=16), "declared\nkW / %", "verified\nkW / %", "events", "derating",
                  title=f"{park_id} DR capacity ({first.duration_h:g} h), annual max "
                        f"{fmt(first.annual_max_demand_kw, ' kW')}; target {first.target_pct_min:g}-"
                        f"{first.target_pct_max:g} %")
    for c in rows:
        table.add_row(c.direction.label, f"{fmt(c.declared_kw)}\n{fmt(c.declared_pct, ' %')}",
                      f"{fmt(c.verified_kw)}\n{fmt(c.verified_pct, ' %')}", str(c.n_events), f"{c.derating_factor:.2f}")
    console.print(table)
    if table_by_event is not None:
        _print_by_event(table_by_event)


def _print_by_event(result: CapacityByEvent) -> None:
    from rich.markup import escape

    if not result.events:
        console.print("no evaluated events: register one with `parkpulse dr register-event`, then "
                      "`parkpulse dr evaluate EVENT`")
        return
    console.print(f"capacity per event and baseline method, % of the annual max {fmt(result.annual_max_demand_kw)} kW "
                  "(* = method of the stored evaluation, counted by the summary)")
    for e in result.events:
        title = (f"{e.event_id}: {e.direction.label}, {e.start.astimezone(UTC):%Y-%m-%d %H:%M} UTC, "
                 f"{e.duration_h:g} h, requested {e.requested_kw:g} kW"
                 + (" — sets the verified capacity" if e.sets_verified else ""))
        console.print(title, markup=False, soft_wrap=True)
        table = Table("method", "avg kW", "% of max", "delivered kWh", "ratio", "quality")
        for m in e.methods:
            quality = "—" if m.quality_ok is None else ("ok" if m.quality_ok else "failed")
            note = f"{quality}: {m.problem}" if m.problem else quality
            table.add_row(f"{m.method}{' *' if m.evaluated_with else ''}", fmt(m.avg_reduction_kw),
                          fmt(m.pct_of_annual_max, " %"), fmt(m.delivered_kwh),
                          "—" if m.ratio_requested is None else f"{m.ratio_requested:.2f}", escape(note))
        console.print(table)


@dr_app.command("events")
def events(
    park_id: str,
    limit: int = 20,
    direction: Annotated[str | None, typer.Option(help=f"only this direction ({DIRECTION_HELP})")] = None,
) -> None:
    """List a park's events, newest first."""
    only = direction_option(direction)
    _, store = open_service()
    with store:
        rows, total = store.list_events(park_id, start=None, end=None, limit=limit, offset=0, direction=only)
        results = {e.event_id: store.get_result(e.event_id) for e in rows}
    table = Table("event", "start (UTC)", "h", "direction", "requested kW", "avg kW", "quality",
                  title=f"{total} event(s)")
    for e in rows:
        r = results[e.event_id]
        table.add_row(e.event_id, f"{e.start.astimezone(UTC):%Y-%m-%d %H:%M}",
                      f"{(e.end - e.start).total_seconds() / 3600:g}", e.direction.label, f"{e.requested_kw:g}",
                      fmt(r.avg_reduction_kw) if r else "—", ("ok" if r.quality_ok else "failed") if r else e.status)
    console.print(table)


@dr_app.command("baseline")
def baseline(
    park_id: str,
    *,
    start: Annotated[str, typer.Option(help="ISO 8601 with offset")],
    end: Annotated[str, typer.Option(help="ISO 8601 with offset")],
    method: Annotated[str | None, typer.Option(help="baseline preset")] = None,
    overrides: Annotated[str | None, typer.Option(help="JSON overrides")] = None,
    notice_day: Annotated[str | None, typer.Option(help="local date the event was notified")] = None,
) -> None:
    """Compute a baseline for a window and show the days used and excluded."""
    from pydantic import ValidationError

    from flex._baseline import EventWindow
    from flex.errors import FlexError

    service, store = open_service()
    with store:
        try:
            resolved = service.method_for(park_id, method, json.loads(overrides) if overrides else None)
            result = service.baseline(park_id, EventWindow(aware(start, "--start"), aware(end, "--end")),
                                      method=resolved,
                                      notice_day=date.fromisoformat(notice_day) if notice_day else None)
        except (FlexError, ValidationError, json.JSONDecodeError, ValueError) as exc:
            raise fail(exc) from None
    console.print(f"event day {result.event_day} is a {result.event_day_type.value} in the park's calendar")
    console.print(f"{resolved.name}: days used {', '.join(d.isoformat() for d in sorted(result.days_used)) or '—'}")
    console.print(f"adjustment: {result.adjustment.kind} ratio={result.adjustment.ratio} "
                  f"offset={result.adjustment.offset_kw}; warnings: {'; '.join(result.warnings) or '—'}")
    table = Table("interval (UTC)", "baseline kW", "unadjusted kW")
    for ts, unadjusted, adjusted in result.profile.select("ts", "baseline_unadjusted_kw", "baseline_kw").iter_rows():
        table.add_row(f"{ts:%Y-%m-%d %H:%M}", fmt(adjusted), fmt(unadjusted))
    console.print(table)


@dr_app.command("bench")
def bench(
    days: Annotated[int, typer.Option(min=60, max=2000, help="days of synthetic 15-min demand")] = 400,
    events: Annotated[int, typer.Option(min=1, max=100, help="event days per baseline preset")] = 10,
    assets: Annotated[int, typer.Option(min=1, max=10_000, help="assets in the forecast park")] = 100,
) -> None:
    """Time the DR core on synthetic data and print the figures (no thresholds)."""
    import os

    from flex._bench import run_benchmark

    figures = run_benchmark(days=days, events=events, assets=assets)
    table = Table("operation", "median ms", "runs", "input", title=f"DR core on {os.cpu_count()} CPU(s)")
    for f in figures:
        table.add_row(f.name, f"{f.median_ms:,.2f}", str(f.runs), f.detail)
    console.print(table)
