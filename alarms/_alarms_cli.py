"""``parkpulse alarms``: list, show and acknowledge operational alarms; evaluate the rules; show or override them.

Mounted in :mod:`parkpulse._server_cli` (``top.add_typer(alarms_app, name="alarms")``). The evaluator runs
after every ``parkpulse aggregate`` too (:func:`alarms._evaluate.after_aggregate`); ``evaluate --every N``
keeps judging the parks on its own, which the offline rule needs when no data arrives at all. Heavy modules
(psycopg, pydantic-settings) are imported inside the commands so ``--help`` stays instant.
"""

# ruff: noqa: PLC0415  (commands import their modules lazily so --help stays instant, as in every _cli.py)

from __future__ import annotations

import getpass
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from alarms._lifecycle_store import AlarmRecord
    from alarms._rules_model import RulesFile

alarms_app = typer.Typer(help="Operational alarms: list, show, acknowledge; evaluate the rules; per-park rule "
                              "overrides.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--database-url", help="Database URL (default: settings).")]
RulesOption = Annotated[Path | None, typer.Option(
    "--rules", help="Rules file (default: PARKPULSE_ALARMS_RULES_FILE, else the built-in alarm_rules.yaml).",
    dir_okay=False, exists=True)]
StateChoice = Literal["active", "open", "acknowledged", "cleared", "all"]
_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def _database_url(database_url: str | None) -> str:
    from pydantic import ValidationError

    from alarms._evaluate_settings import AlarmSettings

    if database_url:
        return database_url
    try:
        return AlarmSettings().database_url  # type: ignore[call-arg]
    except ValidationError:
        err_console.print("[red]error[/]: no database configured: set PARKPULSE_DATABASE_URL, pass --database-url, "
                          "or start the local services with `parkpulse services up`")
        raise typer.Exit(2) from None


def _connect(database_url: str | None) -> Any:
    import psycopg

    try:
        return psycopg.connect(_database_url(database_url), autocommit=True)
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}; start it with `parkpulse services up` or check "
                          "PARKPULSE_DATABASE_URL")
        raise typer.Exit(2) from None


def _rules_path(rules: Path | None) -> Path | None:
    """``--rules``, else PARKPULSE_ALARMS_RULES_FILE, else None (the built-in file)."""
    if rules is not None:
        return rules
    from alarms._evaluate_settings import AlarmSettings

    return AlarmSettings(database_url="").alarms_rules_file


def _fail(exc: Exception, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error[/]: {exc}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _when(ts: datetime | None) -> str:
    return "—" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _value(a: AlarmRecord) -> str:
    if a.value is None:
        return "—"
    limit = "" if a.limit_value is None else f" / {a.limit_value:.6g}"
    return f"{a.value:.6g}{limit} {a.unit}"


@alarms_app.command("list")
def list_command(
    *,
    park: Annotated[str | None, typer.Option(help="Only this park (default: every park).")] = None,
    state: Annotated[StateChoice, typer.Option(
        help="active (open or acknowledged, default), open, acknowledged, cleared or all.")] = "active",
    severity: Annotated[Literal["info", "warning", "critical"] | None, typer.Option(help="Only this severity.")
                        ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest raised first.", min=1, max=10_000)] = 100,
    fmt: Annotated[Literal["table", "json", "csv"], typer.Option("--format", help="table, json or csv.")] = "table",
    wide: Annotated[bool, typer.Option(help="Table: print each alarm's message under the table.")] = False,
    database_url: DbOption = None,
) -> None:
    """The alarms, newest raised first: state, severity, rule, subject, value against limit, when."""
    import csv
    import io

    import orjson
    from rich.table import Table

    from alarms._lifecycle import STATES, State
    from alarms._lifecycle_store import list_alarms

    states: tuple[State, ...]
    if state == "all":
        states = STATES
    elif state == "active":
        states = ("open", "acknowledged")
    else:
        states = (state,)
    with _connect(database_url) as conn:
        alarms, total = list_alarms(conn, park, states=states, severity=severity, limit=limit)
    if fmt == "json":
        typer.echo(orjson.dumps({"total": total, "items": [a.to_json() for a in alarms]},
                                option=orjson.OPT_INDENT_2).decode())
        return
    if fmt == "csv":
        buf = io.StringIO()
        rows = [a.to_json() for a in alarms]
        writer = csv.DictWriter(buf, fieldnames=[k for k in (rows[0] if rows else {"alarm_id": 0}) if k != "context"],
                                extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
        return
    if not alarms:
        where = f" in park {park}" if park else ""
        console.print(f"no {state if state != 'all' else ''} alarms{where}".replace("  ", " ")
                      + ("; run `parkpulse alarms evaluate` to judge the rules now" if state == "active" else ""))
        return
    table = Table(title=f"alarms ({state}{', park ' + park if park else ''}): {len(alarms)} of {total}")
    columns = ["id", "state", "severity", *([] if park else ["park"]), "rule", "subject", "value / limit", "raised UTC"]
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col in ("id", "state", "severity", "raised UTC"))
    for a in alarms:
        style = _SEVERITY_STYLE.get(a.severity, "")
        cells = [str(a.alarm_id), a.state, f"[{style}]{a.severity}[/]", *([] if park else [a.park_id]), a.rule_id,
                 a.subject, _value(a), a.last_raised_at.astimezone(UTC).strftime("%m-%d %H:%M")]
        table.add_row(*cells)
    console.print(table)
    if wide:
        for a in alarms:
            console.print(f"{a.alarm_id}: {a.message_en}", markup=False, soft_wrap=True)
    else:
        console.print("messages: --wide, or `parkpulse alarms show ID`; acknowledge: `parkpulse alarms ack ID --by "
                      "NAME --comment TEXT`", markup=False, soft_wrap=True)


@alarms_app.command("show")
def show_command(
    alarm_id: Annotated[int, typer.Argument(help="Alarm id (from `parkpulse alarms list`).", min=1)],
    *,
    fmt: Annotated[Literal["table", "json"], typer.Option("--format", help="table or json.")] = "table",
    database_url: DbOption = None,
) -> None:
    """One alarm with its full history: raised, acknowledged (by whom, why), cleared, re-opened."""
    import orjson
    from rich.table import Table

    from alarms._lifecycle_store import get_alarm
    from alarms._rules_errors import AlarmNotFoundError

    with _connect(database_url) as conn:
        try:
            a = get_alarm(conn, alarm_id)
        except AlarmNotFoundError as exc:
            _fail(exc)
    if fmt == "json":
        typer.echo(orjson.dumps(a.to_json(history=True), option=orjson.OPT_INDENT_2).decode())
        return
    style = _SEVERITY_STYLE.get(a.severity, "")
    console.print(f"[bold]alarm {a.alarm_id}[/] · {a.park_id} · [{style}]{a.severity}[/] · {a.state}")
    console.print(f"{a.title_en} / {a.title_zh}: {a.subject} (rule {a.rule_id}, {a.kind})")
    console.print(a.message_en, markup=False, soft_wrap=True)
    console.print(a.message_zh, markup=False, soft_wrap=True)
    console.print(f"value / limit: {_value(a)} · raised {_when(a.raised_at)} · last raised {_when(a.last_raised_at)}"
                  f" · condition last held {_when(a.last_true_at)} · re-opened {a.reopen_count}×")
    if a.acknowledged_at is not None:
        console.print(f"acknowledged {_when(a.acknowledged_at)} by {a.acknowledged_by}: {a.ack_comment}",
                      markup=False)
    if a.cleared_at is not None:
        console.print(f"cleared {_when(a.cleared_at)}: {a.clear_reason}", markup=False)
    table = Table(title="history")
    for col in ("at", "action", "state", "severity", "by", "comment / value"):
        table.add_column(col, overflow="fold")
    for t in a.history:
        note = t.comment or ("" if t.value is None else f"value {t.value:g}")
        table.add_row(_when(t.at), t.action, f"{t.from_state or '—'} → {t.to_state}", t.severity, t.actor, note)
    console.print(table)
    if a.state == "open":
        console.print(f"acknowledge: parkpulse alarms ack {a.alarm_id} --by NAME --comment TEXT")


@alarms_app.command("ack")
def ack_command(
    alarm_id: Annotated[int, typer.Argument(help="Alarm id (from `parkpulse alarms list`).", min=1)],
    *,
    by: Annotated[str | None, typer.Option("--by", help="Who acknowledges (default: your user name).")] = None,
    comment: Annotated[str, typer.Option("--comment", help="What is being done about it (kept in the history).")],
    database_url: DbOption = None,
) -> None:
    """Acknowledge an open alarm: who, with a comment. It clears by itself once its condition is gone."""
    from alarms._lifecycle_store import acknowledge
    from alarms._rules_errors import AlarmNotFoundError, AlarmStateError

    who = by
    if not who:
        try:
            who = getpass.getuser() or "operator"
        except (OSError, KeyError):
            who = "operator"
    with _connect(database_url) as conn:
        try:
            a = acknowledge(conn, alarm_id, by=who, comment=comment)
        except AlarmNotFoundError as exc:
            _fail(exc)
        except AlarmStateError as exc:
            _fail(exc, 3)
        except ValueError as exc:
            _fail(exc, 2)
    console.print(f"alarm {a.alarm_id} acknowledged by {a.acknowledged_by}: {a.rule_id} {a.subject} ({a.severity}); "
                  "it clears when its condition is gone", markup=False)


@alarms_app.command("evaluate")
def evaluate_command(
    *,
    park: Annotated[list[str] | None, typer.Option(
        help="Only this park (repeatable; default: every park that changed or is due for a recheck).")] = None,
    every: Annotated[float | None, typer.Option(
        help="Run every N minutes until interrupted (default: once).", min=0.05)] = None,
    now: Annotated[datetime | None, typer.Option(
        help="Judge as of this instant (ISO 8601 with offset; default: the clock), e.g. to replay a simulated "
             "day.", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M:%S%z"])] = None,
    rules: RulesOption = None,
    database_url: DbOption = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "WARNING",
) -> None:
    """Evaluate the alarm rules: raise, re-open and clear alarms, queue their notifications."""
    import psycopg

    from alarms._evaluate import AlarmEvaluator, change_lines
    from alarms._rules_errors import AlarmRulesError
    from infra.logconfig import configure_logging

    configure_logging(log_level)
    try:
        evaluator = AlarmEvaluator.from_settings(_database_url(database_url), rules)
    except AlarmRulesError as exc:
        _fail(exc, 2)
    while True:
        try:
            report = evaluator.run(park, now=now)
        except psycopg.OperationalError as exc:
            err_console.print(f"[yellow]database unavailable[/]: {exc}")
            if every is None:
                raise typer.Exit(2) from None
        else:
            for line in change_lines(report):
                console.print(line, markup=False, soft_wrap=True)
            for result in report.parks if park else ():
                for rule_id, note in sorted(result.notes.items()):
                    console.print(f"  {result.park_id} {rule_id}: skipped ({note})", markup=False, soft_wrap=True)
            if report.failed and every is None:
                raise typer.Exit(1)
        if every is None:
            return
        try:
            time.sleep(every * 60)
        except KeyboardInterrupt:
            return


def _change_overrides(conn: Any, rules_file: RulesFile, park: str, *, assignments: list[str], reset: list[str],
                      by: str) -> dict[str, dict[str, Any]]:
    """Apply ``--reset`` then ``--set`` to the park's stored overrides (each validated first); the result."""
    from alarms._lifecycle_store import load_overrides, save_override
    from alarms._rules_errors import AlarmRulesError
    from alarms._rules_model import merge_override, override_rule, parse_assignment

    stored = load_overrides(conn, park)
    changed: dict[str, dict[str, Any]] = {r: {} for r in reset}
    for text in assignments:
        rule_id, change = parse_assignment(text)
        changed[rule_id] = merge_override(changed.get(rule_id, stored.get(rule_id, {})), change)
    for rule_id, override in changed.items():
        rule = rules_file.rule(rule_id)
        if rule is None:
            raise AlarmRulesError("--set/--reset", [f"no rule {rule_id!r}; the rules are "
                                                    f"{', '.join(r.id for r in rules_file.rules)}"])
        override_rule(rule, override, f"park {park}")  # validate before storing
        save_override(conn, park, rule_id, override, by)
        if override:
            stored[rule_id] = override
        else:
            stored.pop(rule_id, None)
        console.print(f"{park} {rule_id}: " + (json.dumps(override, ensure_ascii=False) if override
                                                else "override removed"), markup=False)
    return stored


@alarms_app.command("rules")
def rules_command(
    *,
    park: Annotated[str | None, typer.Option(help="Show (or change) the rules in effect for this park.")] = None,
    assignments: Annotated[list[str] | None, typer.Option(
        "--set", help="With --park: override RULE.FIELD=VALUE in the database, e.g. "
                      "contracted_demand.contracted_demand_kw=3000 or device_offline.enabled=false (repeatable).")
    ] = None,
    reset: Annotated[list[str] | None, typer.Option(
        help="With --park: drop the park's database override of this rule (repeatable).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who changes the override (default: your user name).")
                  ] = None,
    rules: RulesOption = None,
    fmt: Annotated[Literal["table", "json"], typer.Option("--format", help="table or json.")] = "table",
    database_url: DbOption = None,
) -> None:
    """The alarm rules (file, then the park's overrides): kind, severity, lifecycle settings, parameters."""
    import orjson
    from rich.table import Table

    from alarms._rules_errors import AlarmRulesError
    from alarms._rules_model import effective_rules, load_rules

    if (assignments or reset) and not park:
        _fail(ValueError("--set and --reset change one park's overrides: add --park PARK"), 2)
    try:
        rules_file = load_rules(_rules_path(rules))
        stored: dict[str, dict[str, Any]] = {}
        if park:
            with _connect(database_url) as conn:
                stored = _change_overrides(conn, rules_file, park, assignments=assignments or [],
                                           reset=reset or [], by=by or getpass.getuser() or "operator")
        effective = effective_rules(rules_file, park, stored) if park else rules_file.rules
    except AlarmRulesError as exc:
        _fail(exc, 2)
    if fmt == "json":
        typer.echo(orjson.dumps({"source": rules_file.source, "park_id": park, "overrides": stored,
                                 "rules": [r.model_dump(mode="json") for r in effective]},
                                option=orjson.OPT_INDENT_2).decode())
        return
    console.print(f"rules file: [bold]{rules_file.source}[/]" + (f" · park {park}" if park else ""))
    table = Table(title="alarm rules" + (f" in effect for {park}" if park else ""))
    for col in ("rule", "on", "severity", "raise after", "re-open within"):
        table.add_column(col, overflow="fold")
    overridden = set(stored) | (set(rules_file.parks.get(park, {})) if park else set())
    for r in effective:
        name = r.id if r.kind == r.id else f"{r.id} ({r.kind})"
        table.add_row(name + (" *" if r.id in overridden else ""), "yes" if r.enabled else "[dim]no[/]",
                      f"[{_SEVERITY_STYLE[r.severity]}]{r.severity}[/]", f"{r.raise_after} evaluation(s)",
                      f"{r.reopen_within_min:g} min")
    console.print(table)
    console.print("parameters:")
    for r in effective:
        params = " ".join(f"{k}={_param(v)}" for k, v in r.params.model_dump(mode="json").items())
        console.print(f"  {r.id}: {params}", markup=False, highlight=False, soft_wrap=True)
    if park:
        console.print("* overridden for this park; change with --set RULE.FIELD=VALUE, drop with --reset RULE")


def _param(value: Any) -> str:
    """A parameter value, compact: 900 not 900.0, lists and mappings as JSON."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
