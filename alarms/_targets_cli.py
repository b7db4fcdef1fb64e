"""``parkpulse targets`` (set, import, list, history, evaluate) and ``parkpulse report projection``.

Mounting (``parkpulse/_server_cli.py``)::

    from alarms._targets_cli import report_projection, targets_app
    top.add_typer(targets_app, name="targets")
    report_app.command("projection")(report_projection)

Heavy modules (psycopg, the projection) are imported inside the commands so ``--help`` stays instant.
"""
# ruff: noqa: PLC0415 - commands import their modules lazily so --help stays instant

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    import psycopg

    from alarms._targets import TargetInput
    from alarms._targets_store import RecordResult
    from alarms._warning import WarningPolicy

targets_app = typer.Typer(help="Energy and carbon targets per park (annual, monthly, versioned) and their 预警 levels.",
                          no_args_is_help=True)

ParkArg = Annotated[str, typer.Argument(help="Park id")]
DbOption = Annotated[str | None, typer.Option("--database-url", help="Database URL (default: settings)")]
YearOption = Annotated[int | None, typer.Option(help="Only this year's targets", min=1970, max=2200)]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="Park-local day to evaluate on, YYYY-MM-DD (default: today in the park's time zone)")]
ThresholdsOption = Annotated[Path | None, typer.Option(
    "--thresholds", help="预警 thresholds YAML (default: alarms/data/targets_thresholds.yaml)", exists=True,
    dir_okay=False)]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _connect(database_url: str | None) -> psycopg.Connection[Any]:
    import psycopg

    from infra.settings import ServiceSettings

    url = database_url or ServiceSettings().database_url  # type: ignore[call-arg]
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise typer.BadParameter(f"cannot reach the database ({exc}); start it with `parkpulse services up` "
                                 "or set PARKPULSE_DATABASE_URL", param_hint="--database-url") from None


def _day(text: str | None, hint: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date; write YYYY-MM-DD", param_hint=hint) from None


def _policy(path: Path | None) -> WarningPolicy:
    from alarms._targets_errors import ThresholdsError
    from alarms._warning import load_warning_policy

    try:
        return load_warning_policy(path)
    except ThresholdsError as exc:
        raise _fail(str(exc)) from None


def _monthly(values: list[str]) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for text in values:
        month, sep, value = text.partition("=")
        try:
            m, v = int(month), float(value)
        except ValueError:
            m, v, sep = 0, 0.0, ""
        if not sep:
            raise typer.BadParameter(f"{text!r}: write MONTH=VALUE, e.g. 3=120.5", param_hint="--monthly")
        out.append((m, v))
    return out


def _echo_results(results: list[RecordResult]) -> None:
    for r in results:
        k = r.target.key
        what = f"{k.indicator} ({k.variant}) {k.period_label} {k.subject_label} = {r.target.value:g} {r.target.unit}"
        if r.status == "unchanged":
            typer.echo(f"unchanged  {what}")
            continue
        extra = []
        if r.ended:
            extra.append(f"ends version(s) {', '.join(map(str, r.ended))} on {r.valid_from}")
        if r.superseded:
            extra.append(f"supersedes version(s) {', '.join(map(str, r.superseded))}")
        typer.echo(f"version {r.target_id}  {what}, valid from {r.valid_from}"
                   + (f" ({'; '.join(extra)})" if extra else ""))
        if r.note:
            typer.secho(f"  note: {r.note}", fg=typer.colors.YELLOW)


def _record(targets: list[TargetInput], recorded_by: str, database_url: str | None) -> None:
    from alarms._targets_errors import TargetError
    from alarms._targets_store import record_targets

    with _connect(database_url) as conn:
        try:
            results = record_targets(conn, targets, recorded_by=recorded_by)
        except TargetError as exc:
            raise _fail(str(exc)) from None
    _echo_results(results)


@targets_app.command("set")
def set_target(
    park: ParkArg,
    *,
    indicator: Annotated[str, typer.Option(help="total_energy, total_co2, energy_intensity_va, co2_intensity_va, "
                                                "nonfossil_share, renewable_share or pue")],
    year: Annotated[int, typer.Option(help="The target's year", min=1970, max=2200)],
    unit: Annotated[str, typer.Option(help="tce, tCO2, tce/10^4 CNY, tCO2/10^4 CNY, % or 1 (PUE)")],
    source: Annotated[str, typer.Option(help="Where it comes from: the plan, allocation or goal, named")],
    annual: Annotated[float | None, typer.Option(help="The annual target")] = None,
    monthly: Annotated[list[str] | None, typer.Option(help="A monthly target MONTH=VALUE (repeatable)")] = None,
    basis: Annotated[Literal["calorific", "coal_equivalent"] | None, typer.Option(
        help="Energy basis: calorific (当量值) or coal_equivalent (等价值)")] = None,
    method: Annotated[Literal["location", "market"] | None, typer.Option(help="CO2 method")] = None,
    variant: Annotated[str | None, typer.Option(help="renewable_share: electricity or energy")] = None,
    source_kind: Annotated[Literal["seed_plan", "provincial_allocation", "company_goal", "other"], typer.Option(
        help="Kind of source")] = "other",
    site: Annotated[str | None, typer.Option(help="A site's target (PUE: the data-centre site)")] = None,
    enterprise: Annotated[str | None, typer.Option(help="An enterprise's target")] = None,
    valid_from: Annotated[str | None, typer.Option(
        help="First park-local day of this version, YYYY-MM-DD (default: the period start for a new target, "
             "today for a change)")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the version")] = None,
    database_url: DbOption = None,
) -> None:
    """Set a park's annual and/or monthly target; a changed value becomes a new version from --valid-from."""
    from alarms._targets import ANNUAL, validate_target
    from alarms._targets_errors import InvalidTargetError

    chosen = [v for v in (basis, method, variant) if v is not None]
    if len(chosen) > 1:
        raise typer.BadParameter("give one of --basis, --method or --variant", param_hint="--variant")
    if site and enterprise:
        raise typer.BadParameter("a target is for a site or an enterprise, not both", param_hint="--enterprise")
    values = ([(ANNUAL, annual)] if annual is not None else []) + _monthly(monthly or [])
    if not values:
        raise typer.BadParameter("give --annual VALUE and/or --monthly MONTH=VALUE", param_hint="--annual")
    kind, subject = ("site", site) if site else ("enterprise", enterprise) if enterprise else ("park", "")
    start = _day(valid_from, "--valid-from")
    try:
        targets = [validate_target(park_id=park, indicator=indicator, variant=chosen[0] if chosen else None,
                                   year=year, month=month, value=value, unit=unit, source=source,
                                   source_kind=source_kind, subject_kind=kind, subject=subject or "",
                                   valid_from=start, note=note)
                   for month, value in values]
    except InvalidTargetError as exc:
        raise _fail(str(exc)) from None
    _record(targets, "cli", database_url)


@targets_app.command("import")
def import_targets(
    file: Annotated[Path, typer.Argument(help="CSV or YAML (.yaml/.yml) targets file", exists=True, dir_okay=False)],
    park: Annotated[str | None, typer.Option(help="Park id of rows that name none")] = None,
    database_url: DbOption = None,
) -> None:
    """Import targets from a CSV or YAML file (all or nothing; unchanged targets are skipped)."""
    from alarms._targets_errors import TargetFileError
    from alarms._targets_file import parse_targets

    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{file}: not UTF-8 text; save the targets file as UTF-8") from None
    try:
        targets = parse_targets(text, file.name, park)
    except TargetFileError as exc:
        raise _fail(str(exc)) from None
    _record(targets, f"import:{file.name}", database_url)


def _version_row(v: Any) -> dict[str, Any]:
    t = v.target
    return {"target_id": v.target_id, "indicator": t.indicator, "variant": t.variant,
            "subject": v.key.subject_label, "period": v.key.period_label, "value": t.value, "unit": t.unit,
            "source": t.source, "source_kind": t.source_kind, "valid_from": v.valid_from.isoformat(),
            "valid_to": v.valid_to.isoformat() if v.valid_to else None,
            "superseded_at": v.superseded_at.isoformat() if v.superseded_at else None,
            "replaced_by": v.replaced_by, "recorded_at": v.recorded_at.isoformat(), "recorded_by": v.recorded_by,
            "note": t.note}


def _print_rows(rows: list[dict[str, Any]], fmt: str, columns: list[str], empty: str) -> None:
    import json

    if fmt == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo(empty)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row[c] is None else f"{row[c]:g}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))
    Console().print(table)


Fmt = Annotated[Literal["table", "json"], typer.Option("--format", help="table or json")]


@targets_app.command("list")
def list_targets(park: ParkArg, year: YearOption = None, as_of: AsOfOption = None, fmt: Fmt = "table",
                 database_url: DbOption = None) -> None:
    """The targets in effect (the version judging each period as of --as-of)."""
    from alarms._targets_errors import TargetError
    from alarms._targets_store import by_key, effective_targets, load_versions, local_today, park_timezone

    with _connect(database_url) as conn:
        try:
            day = _day(as_of, "--as-of") or local_today(park_timezone(conn, park))
            years = [year] if year is not None else sorted({v.target.year for v in load_versions(conn, park)})
            versions = [v for y in years for v in effective_targets(conn, park, y, day)]
        except TargetError as exc:
            raise _fail(str(exc)) from None
    rows = [_version_row(v) for vs in by_key(versions).values() for v in vs]
    _print_rows(rows, fmt, ["target_id", "indicator", "variant", "subject", "period", "value", "unit", "source",
                            "valid_from"],
                f"no targets for {park}; set one with `parkpulse targets set {park} --indicator total_energy …` "
                "or `parkpulse targets import FILE`")


@targets_app.command("history")
def target_history(park: ParkArg, year: YearOption = None, fmt: Fmt = "table", database_url: DbOption = None) -> None:
    """Every version of the park's targets: when each applied, what replaced it, who recorded it."""
    from alarms._targets_errors import TargetError
    from alarms._targets_store import load_versions, park_timezone

    with _connect(database_url) as conn:
        try:
            park_timezone(conn, park)
            versions = load_versions(conn, park, year=year)
        except TargetError as exc:
            raise _fail(str(exc)) from None
    _print_rows([_version_row(v) for v in versions], fmt,
                ["target_id", "indicator", "variant", "subject", "period", "value", "unit", "valid_from", "valid_to",
                 "superseded_at", "replaced_by", "recorded_by", "source"], f"no targets recorded for {park}")


@targets_app.command("evaluate")
def evaluate(park: Annotated[str | None, typer.Argument(help="Park id (default: every park with targets this year)")
                             ] = None,
             year: YearOption = None, as_of: AsOfOption = None, thresholds: ThresholdsOption = None,
             database_url: DbOption = None) -> None:
    """Project the running targets and store their 预警 levels (hysteresis); notify each level change.

    Run it daily (or after `parkpulse aggregate`): the hysteresis counts consecutive daily evaluations.
    """
    from alarms._projection_store import build_report
    from alarms._targets_errors import TargetError
    from alarms._targets_store import local_today, park_timezone
    from alarms._warning_store import evaluate_parks, evaluate_warnings

    policy = _policy(thresholds)
    with _connect(database_url) as conn:
        try:
            if park is None:
                if year is not None or as_of is not None:
                    raise typer.BadParameter("--year and --as-of need a PARK", param_hint="PARK")
                changes_by_park = evaluate_parks(conn, policy)
            else:
                day = _day(as_of, "--as-of") or local_today(park_timezone(conn, park))
                report = build_report(conn, park, year or day.year, policy, as_of=day)
                changes_by_park = {park: evaluate_warnings(conn, report, policy)}
        except TargetError as exc:
            raise _fail(str(exc)) from None
    if not changes_by_park:
        typer.echo("no park has targets for its current year; set them with `parkpulse targets set` or `import`")
    for park_id, changes in changes_by_park.items():
        typer.echo(f"{park_id}: {len(changes)} level change(s)")
        for change in changes:
            k = change.key
            typer.echo(f"  {k.indicator} ({k.variant}) {k.period_label} {k.subject_label}: {change.previous or '—'} "
                       f"→ {change.level} ({change.reason}, ratio {change.ratio:.3f})"
                       + (f", notification {change.notification_key}" if change.notification_key else ""))


def report_projection(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    year: Annotated[int | None, typer.Option(help="Year (default: the current one)", min=1970, max=2200)] = None,
    fmt: Annotated[Literal["table", "json", "csv"], typer.Option("--format", help="table, json or csv.")] = "table",
    as_of: AsOfOption = None,
    store: Annotated[bool, typer.Option("--evaluate/--no-evaluate",
                                        help="Also store the 预警 levels (as `parkpulse targets evaluate`).")] = False,
    thresholds: ThresholdsOption = None,
    database_url: DbOption = None,
) -> None:
    """Year-end and month-end projection of every target with its band, ratio, 预警 level, method and back-test."""
    from rich.console import Console

    from alarms._projection_render import method_lines, to_csv, to_json, to_table
    from alarms._projection_store import build_report
    from alarms._targets_errors import TargetError
    from alarms._targets_store import local_today, park_timezone
    from alarms._warning_store import evaluate_warnings

    policy = _policy(thresholds)
    with _connect(database_url) as conn:
        try:
            day = _day(as_of, "--as-of") or local_today(park_timezone(conn, park))
            report = build_report(conn, park, year or day.year, policy, as_of=day)
            if store:
                evaluate_warnings(conn, report, policy)
                report = build_report(conn, park, report.year, policy, as_of=day)
        except TargetError as exc:
            raise _fail(str(exc)) from None
    if fmt == "json":
        typer.echo(to_json(report))
        return
    if fmt == "csv":
        typer.echo(to_csv(report), nl=False)
        return
    console = Console()
    if not report.rows:
        console.print(f"no targets for {park} {report.year}; set them with `parkpulse targets set {park} …` or "
                      "`parkpulse targets import FILE`", markup=False)
        return
    console.print(to_table(report))
    for line in method_lines(report):
        console.print(line, markup=False, soft_wrap=True)
    t = policy.thresholds("total_energy")
    console.print(f"预警 thresholds ({policy.source}): cap yellow ≥ {t.yellow:g}, red ≥ {t.red:g}; floors reversed; "
                  f"a level moves at once past a threshold by {policy.margin:g}, else after "
                  f"{policy.persistence_days} consecutive daily evaluations", markup=False, soft_wrap=True)
