"""``parkpulse quarantine list|show|replay``: see and replay rejected input without writing SQL.

Mount with ``app.add_typer(quarantine_app, name="quarantine")``. The logic lives in
:mod:`ingest._quarantine` (queries), :mod:`ingest._replay` (replay) and :mod:`ingest._payload_view` (safe
display); this module only parses options and prints. Everything that came from a device or a file is
escaped before it reaches the terminal (see :func:`ingest._payload_view.escape_text`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ingest._payload_view import escape_text, render_payload, short
from ingest._quarantine import (
    LIST_HINT,
    QuarantineEntry,
    QuarantineFilter,
    QuarantineNotFoundError,
    QuarantineSummary,
)
from ingest.errors import StorageUnavailableError
from ingest.settings import IngestSettings

if TYPE_CHECKING:
    from ingest._replay import ReplayReport

quarantine_app = typer.Typer(help="Inspect and replay quarantined (rejected) messages and CSV rows.",
                             no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

Format = Literal["table", "json", "csv"]
Source = Literal["mqtt", "import"]
Outcome = Literal["stored", "rejected", "not_replayable", "never"]
ParkOpt = Annotated[str | None, typer.Option("--park", help="Only this park.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="Only this device.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Only this reason (unregistered, schema_violation, …).")]
SourceOpt = Annotated[Source | None, typer.Option(help="Only mqtt messages or CSV import rows.")]
SinceOpt = Annotated[str | None, typer.Option(help="Received at or after (ISO 8601 with offset).")]
UntilOpt = Annotated[str | None, typer.Option(help="Received before (ISO 8601 with offset).")]
ReplayableOpt = Annotated[bool | None, typer.Option(
    "--replayable/--not-replayable", help="Only records whose raw bytes are complete / were truncated.")]
OutcomeOpt = Annotated[Outcome | None, typer.Option(help="Last replay outcome, or 'never' (not replayed yet).")]
DbOpt = Annotated[str | None, typer.Option(help="Database URL (default: settings).")]
_TABLE_ROWS = 50  # replay prints every record up to this many, then only the ones that did not store


class _QuarantineSettings(IngestSettings):
    """Ingest settings for these commands: the validation limits and the database; no broker needed."""

    mqtt_url: str = "mqtt://127.0.0.1"


def _settings(database_url: str | None) -> IngestSettings:
    from pydantic import ValidationError

    try:
        if database_url:
            return _QuarantineSettings(database_url=database_url)
        return _QuarantineSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        err_console.print(Text(f"configuration error: {exc}; set PARKPULSE_DATABASE_URL or pass --database-url"))
        raise typer.Exit(2) from None


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not ISO 8601, e.g. 2026-11-20T08:00+08:00",
                                 param_hint=option) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} needs a UTC offset, e.g. 2026-11-20T08:00+08:00 or …Z",
                                 param_hint=option)
    return parsed


def _filter(*, ids: list[int] | None = None, park: str | None, device: str | None, reason: str | None,
            source: str | None, since: str | None, until: str | None, replayable: bool | None,
            outcome: str | None) -> QuarantineFilter:
    return QuarantineFilter(ids=tuple(ids or ()), park_id=park, device_id=device, reason=reason, source=source,
                            since=_when(since, "--since"), until=_when(until, "--until"), replayable=replayable,
                            outcome=outcome)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(Text(f"error: {message}", style="red"))
    return typer.Exit(code)


def _utc(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


def _cell(value: object) -> Text:
    """A table cell that is never parsed as rich markup, with unsafe characters escaped."""
    return Text(escape_text(str(value)) if value is not None else "—")


@quarantine_app.command("list")
def list_quarantine(
    *,
    park: ParkOpt = None, device: DeviceOpt = None, reason: ReasonOpt = None, source: SourceOpt = None,
    since: SinceOpt = None, until: UntilOpt = None, replayable: ReplayableOpt = None, outcome: OutcomeOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Records to show (newest first).")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Records to skip.")] = 0,
    summary: Annotated[bool, typer.Option(
        "--summary", help="Counts by park, device and reason (with rate-limited, suppressed ones) instead.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = "table",
    database_url: DbOpt = None,
) -> None:
    """List quarantined messages (newest first) or, with --summary, counts by park/device/reason."""
    from ingest._quarantine import QuarantineQueries

    flt = _filter(park=park, device=device, reason=reason, source=source, since=since, until=until,
                  replayable=replayable, outcome=outcome)
    queries = QuarantineQueries(_settings(database_url).database_url)
    try:
        if summary:
            _print_summary(queries.summary(flt), fmt)
            return
        entries, total = queries.list_records(flt, limit=limit, offset=offset)
    except StorageUnavailableError as exc:
        raise _fail(str(exc), 2) from None
    if fmt == "json":
        typer.echo(json.dumps({"items": [e.to_json() for e in entries], "total": total, "limit": limit,
                               "offset": offset}, indent=2))
    elif fmt == "csv":
        _echo_csv([_csv_row(e.to_json()) for e in entries], [*entries[0].to_json()] if entries else [])
    else:
        _print_entries(entries, total, offset)


def _csv_row(data: dict[str, Any]) -> dict[str, Any]:
    return {k: escape_text(v) if isinstance(v, str) else v for k, v in data.items()}


def _echo_csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not columns:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    typer.echo(buffer.getvalue(), nl=False)


def _print_entries(entries: list[QuarantineEntry], total: int, offset: int) -> None:
    table = Table("id", "received (UTC)", "source", "park", "device", "reason", "rejected", "accepted", "bytes",
                  "truncated", "replay", "detail")
    for e in entries:
        table.add_row(str(e.quarantine_id), _utc(e.received_at), e.source, _cell(e.park_id), _cell(e.device_id),
                      _cell(e.reason), str(e.n_rejected), str(e.n_accepted), f"{e.raw_length:,}",
                      "yes" if e.raw_truncated else "", _cell(e.replay_outcome), Text(short(e.detail, 60)))
    console.print(table)
    more = f"; --offset {offset + len(entries)} for more" if offset + len(entries) < total else ""
    console.print(Text(f"{len(entries)} of {total} records{more}. One record in full: "
                       "parkpulse quarantine show ID; replay: parkpulse quarantine replay ID …"))


def _print_summary(summary: QuarantineSummary, fmt: Format) -> None:
    groups = [{"kind": "kept", "park_id": g.park_id, "device_id": g.device_id, "reason": g.reason,
               "n_messages": g.n_messages, "n_rejected": g.n_rejected, "n_truncated": g.n_truncated,
               "n_replayed_stored": g.n_replayed_stored, "n_bytes": None, "first": g.first_at.isoformat(),
               "last": g.last_at.isoformat()} for g in summary.groups]
    suppressed = [{"kind": "suppressed", "park_id": s.park_id, "device_id": s.device_id, "reason": s.reason,
                   "n_messages": s.n_messages, "n_rejected": None, "n_truncated": None, "n_replayed_stored": None,
                   "n_bytes": s.n_bytes, "first": s.first_window.isoformat(), "last": s.last_window.isoformat()}
                  for s in summary.suppressed]
    if fmt == "json":
        typer.echo(json.dumps({"groups": groups, "suppressed": suppressed}, indent=2))
        return
    if fmt == "csv":
        _echo_csv([_csv_row(r) for r in groups + suppressed], list((groups + suppressed)[0]) if groups or suppressed
                  else [])
        return
    table = Table("park", "device", "reason", "messages", "readings rejected", "truncated", "replayed (stored)",
                  "first (UTC)", "last (UTC)", title="quarantined")
    for g in summary.groups:
        table.add_row(_cell(g.park_id), _cell(g.device_id), _cell(g.reason), f"{g.n_messages:,}",
                      f"{g.n_rejected:,}", f"{g.n_truncated:,}", f"{g.n_replayed_stored:,}", _utc(g.first_at),
                      _utc(g.last_at))
    console.print(table)
    if summary.suppressed:
        sup = Table("park", "device", "reason", "messages", "bytes", "first minute (UTC)", "last minute (UTC)",
                    title="suppressed (over the device's rate limit: counted, not kept)")
        for s in summary.suppressed:
            sup.add_row(_cell(s.park_id or "(none)"), _cell(s.device_id or "(none)"), _cell(s.reason),
                        f"{s.n_messages:,}", f"{s.n_bytes:,}", _utc(s.first_window), _utc(s.last_window))
        console.print(sup)
    else:
        console.print("no suppressed (rate-limited) rejects in this selection")


@quarantine_app.command("show")
def show_quarantine(
    quarantine_id: Annotated[int, typer.Argument(help="Quarantine record id (see `parkpulse quarantine list`).")],
    raw_out: Annotated[Path | None, typer.Option(help="Write the kept raw bytes to this file.", dir_okay=False)
                       ] = None,
    hex_dump: Annotated[bool, typer.Option("--hex", help="Show a hex dump even when the payload is text.")] = False,
    full: Annotated[bool, typer.Option(help="Hex dumps: show every byte (default: the first 4 KiB).")] = False,
    database_url: DbOpt = None,
) -> None:
    """One record: every column, the full detail, and the payload (pretty JSON, escaped text or hex)."""
    from ingest._payload_view import hexdump
    from ingest._quarantine import QuarantineQueries

    try:
        entry = QuarantineQueries(_settings(database_url).database_url).get_record(quarantine_id)
    except StorageUnavailableError as exc:
        raise _fail(str(exc), 2) from None
    if entry is None or entry.raw is None:
        raise _fail(f"no quarantine record {quarantine_id}; {LIST_HINT}")
    data = entry.to_json()
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key != "detail":
            typer.echo(f"{key:<{width}}  {escape_text(str(value)) if value is not None else '—'}")
    typer.echo(f"detail:\n{escape_text(entry.detail, multiline=True)}")
    limit = None if full else 4096
    kind, view = ("binary", hexdump(entry.raw, limit=limit)) if hex_dump else render_payload(entry.raw,
                                                                                             hex_limit=limit)
    state = (f"truncated at capture: {len(entry.raw):,} of {entry.raw_length:,} bytes kept" if entry.raw_truncated
             else f"{entry.raw_length:,} bytes")
    typer.echo(f"payload ({kind}, {state}):")
    typer.echo(view)
    if raw_out is not None:
        raw_out.write_bytes(entry.raw)
        typer.echo(f"wrote {len(entry.raw):,} bytes to {raw_out}"
                   + (" (truncated: not the whole message)" if entry.raw_truncated else ""))


@quarantine_app.command("replay")
def replay_quarantine(
    ids: Annotated[list[int] | None, typer.Argument(help="Record ids to replay (or select with the filters).")
                   ] = None,
    *,
    park: ParkOpt = None, device: DeviceOpt = None, reason: ReasonOpt = None, source: SourceOpt = None,
    since: SinceOpt = None, until: UntilOpt = None, replayable: ReplayableOpt = None, outcome: OutcomeOpt = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every record when no id or filter is given.")
                          ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many records (oldest first).")
                     ] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate only: write nothing, record nothing.")] = False,
    fmt: Annotated[Literal["table", "json"], typer.Option("--format", help="table or json.")] = "table",
    database_url: DbOpt = None,
) -> None:
    """Send held messages through validation and the idempotent store again; record each outcome.

    Outcomes: stored (readings stored now or already present), rejected (still invalid: the new reason is
    recorded on the row, no new quarantine row), not_replayable (raw bytes truncated at capture). Exits
    non-zero only on real errors (database), not on rejections.
    """
    from ingest._replay import QuarantineReplayer

    flt = _filter(ids=ids, park=park, device=device, reason=reason, source=source, since=since, until=until,
                  replayable=replayable, outcome=outcome)
    if flt.is_unbounded() and not replay_all:
        raise typer.BadParameter("name record ids or a filter (--park, --device, --reason, --source, --since, "
                                 "--until, --replayable, --outcome); --all replays every record")
    settings = _settings(database_url)

    async def run() -> ReplayReport:
        async with QuarantineReplayer(settings.database_url, policy=settings.validation_policy()) as replayer:
            return await replayer.replay(flt, dry_run=dry_run, limit=limit)

    try:
        report = asyncio.run(run())
    except QuarantineNotFoundError as exc:
        raise _fail(str(exc)) from None
    except StorageUnavailableError as exc:
        raise _fail(f"{exc}; records replayed before the failure keep their outcome, run the command again "
                    "(replay is idempotent)", 2) from None
    if fmt == "json":
        typer.echo(json.dumps({"dry_run": report.dry_run, "counts": report.counts(), "stored": report.stored,
                               "duplicates": report.duplicates, "results": [r.to_json() for r in report.results]},
                              indent=2))
    else:
        _print_report(report)
    if report.errors:
        raise typer.Exit(1)


def _print_report(report: ReplayReport) -> None:
    from ingest._quarantine import ReplayOutcome

    if not report.results:
        console.print(Text(f"nothing to replay: no quarantine record matches; {LIST_HINT}"))
        return
    rows = report.results
    if len(rows) > _TABLE_ROWS:
        rows = [r for r in rows if r.outcome is not ReplayOutcome.STORED][: _TABLE_ROWS * 4]
    table = Table("id", "park", "device", "outcome", "readings", "stored", "duplicates", "detail",
                  title="replay (dry run: nothing written)" if report.dry_run else "replay")
    for r in rows:
        table.add_row(str(r.quarantine_id), _cell(r.park_id), _cell(r.device_id), r.outcome.value, str(r.readings),
                      "—" if r.stored is None else str(r.stored),
                      "—" if r.duplicates is None else str(r.duplicates), _cell(r.detail))
    if rows:
        console.print(table)
    if len(rows) < len(report.results):
        console.print(f"({len(report.results) - len(rows):,} more records not listed: use --format json for all)")
    totals = Table("outcome", "records", title="summary")
    for outcome, n in report.counts().items():
        if n or outcome != "error":
            totals.add_row(outcome, f"{n:,}")
    console.print(totals)
    if report.dry_run:
        console.print("dry run: nothing was written; run again without --dry-run to store")
    else:
        console.print(f"readings stored: {report.stored:,}; already present (skipped): {report.duplicates:,}")


@quarantine_app.command("prune")
def prune_quarantine_command(
    max_age_days: Annotated[float | None, typer.Option(help="Keep records younger than this (default: setting).")
                            ] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Keep at most this many bytes, newest first "
                                                       "(default: setting).")] = None,
    database_url: DbOpt = None,
) -> None:
    """Apply quarantine retention now (ingest also does it every retention_interval_s)."""
    from datetime import timedelta

    import psycopg

    from ingest._retention import prune_quarantine

    s = _settings(database_url)

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(s.database_url) as conn:
            result = await prune_quarantine(conn, now=datetime.now(UTC),
                                            max_age=timedelta(days=max_age_days or s.quarantine_max_age_days),
                                            max_bytes=max_bytes or s.quarantine_max_bytes)
        if not result.ran:
            console.print("another process is pruning the quarantine right now; nothing done")
            return
        console.print(f"removed {result.by_age:,} records older than the age limit, {result.by_size:,} beyond the "
                      f"size limit, and {result.suppressed_rows:,} per-minute suppressed counts")

    try:
        asyncio.run(run())
    except psycopg.OperationalError as exc:
        raise _fail(f"cannot reach the database ({exc}); start it with `parkpulse services up`", 2) from None


@quarantine_app.command("restore-dead-letters")
def restore_dead_letters(
    files: Annotated[list[Path], typer.Argument(help="Dead-letter files (<dead_letter_dir>/<client>-<day>.jsonl)",
                                                exists=True, dir_okay=False)],
    database_url: DbOpt = None,
) -> None:
    """Move messages that ingest wrote to its dead-letter file into the quarantine table.

    Ingest writes a message there only when the database refused it even as a quarantine record. Once
    the cause is fixed, this puts each one into the quarantine (where `list`, `show` and `replay` see it)
    and renames a fully restored file to ``*.restored``; messages still refused stay in the file.
    """
    from ingest._batch import Batch, HeldMessage
    from ingest._dead_letter import DeadLetter, read_dead_letters
    from ingest._store import ReadingStore
    from ingest.errors import BatchRejectedError

    s = _settings(database_url)

    async def restore(letters: list[DeadLetter]) -> list[tuple[DeadLetter, str]]:
        store = ReadingStore(s.database_url)
        refused: list[tuple[DeadLetter, str]] = []
        try:
            for letter in letters:
                batch = Batch(policy=s.validation_policy())
                batch.quarantine_whole(HeldMessage(letter.topic, letter.raw, letter.received_at, None),
                                       reason=letter.reason, detail=letter.detail)
                try:
                    await store.write(batch)
                except BatchRejectedError as exc:
                    refused.append((letter, str(exc)))
        finally:
            await store.close()
        return refused

    for path in files:
        try:
            letters = read_dead_letters(path)
        except (ValueError, KeyError) as exc:
            raise _fail(f"{path} is not a dead-letter file written by ingest ({exc})") from None
        try:
            refused = asyncio.run(restore(letters))
        except StorageUnavailableError as exc:
            raise _fail(f"{exc}; start the database with `parkpulse services up`", 2) from None
        if refused:
            path.write_text("".join(letter.to_json() + "\n" for letter, _ in refused), encoding="ascii")
            for letter, why in refused[:5]:
                err_console.print(Text(f"still refused: {escape_text(letter.topic)}: {escape_text(why)}"))
            raise _fail(f"{path}: {len(letters) - len(refused)} restored, {len(refused)} still refused and kept in "
                        "the file")
        path.rename(path.with_name(path.name + ".restored"))
        console.print(f"{path}: {len(letters)} messages restored to the quarantine; see them with "
                      "`parkpulse quarantine list --reason store_error`")
