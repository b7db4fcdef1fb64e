"""``parkpulse registry export`` and ``parkpulse registry import``: a whole park in one YAML or CSV file.

The file layout is described in :mod:`infra.db._registry_file`; an export imports back unchanged. Import
is all-or-nothing: every problem of the file is listed with its line, and nothing is written unless the
whole file is valid. ``--dry-run`` prints what would change.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from infra.db import ImportReport

DbOption = Annotated[str | None, typer.Option("--database-url", help="Database URL (default: settings)")]


def _decode(data: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM); GB18030 as the fallback, which is what a Chinese Excel saves as CSV."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        from parkpulse._registry_cli import fail  # noqa: PLC0415 - a cycle at import time otherwise

        raise fail(f"{path} is neither UTF-8 nor GB18030 text; save it as UTF-8 (Excel: CSV UTF-8)") from None
    typer.secho(f"note: {path} is not UTF-8; read it as GB18030", err=True, fg=typer.colors.YELLOW)
    return text


def export_registry(
    park: Annotated[str, typer.Option("--park", help="The park to export")],
    fmt: Annotated[str | None, typer.Option("--format", help="yaml or csv (default: from -o's extension, else yaml)")]
    = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file (default: stdout)")] = None,
    include_auto: Annotated[bool, typer.Option(
        "--include-auto", help="Also list auto-registered devices (importing the file then registers them)")] = False,
    database_url: DbOption = None,
) -> None:
    """Write a park's registry (park, sites, the operator's devices) as a YAML or CSV file.

    Device attributes are those the operator set; `registry device show` also shows the device's own.
    Import the file back, or an edited copy of it, with `registry import`.
    """
    # Imported here: --help stays instant, and _registry_cli imports this module.
    from infra.db import RegistryError, dump_registry, read_registry, registry_format  # noqa: PLC0415
    from parkpulse._registry_cli import connect, fail  # noqa: PLC0415

    if fmt is None:
        try:
            fmt = registry_format(output) if output is not None else "yaml"
        except RegistryError as exc:
            raise typer.BadParameter(f"{exc}, or give --format", param_hint="--output") from None
    if fmt not in ("yaml", "csv"):
        raise typer.BadParameter(f"unknown format {fmt!r}; use yaml or csv", param_hint="--format")
    with connect(database_url) as conn:
        try:
            document = read_registry(conn, park, include_auto=include_auto)
        except RegistryError as exc:
            raise fail(str(exc)) from None
    text = dump_registry(document, "csv" if fmt == "csv" else "yaml")
    if output is None:
        typer.echo(text, nl=False)
        return
    # A BOM lets Excel open a UTF-8 CSV with its Chinese names intact; the import accepts it.
    output.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="")
    typer.echo(f"wrote {output}: park {park}, {len(document.sites)} site(s), {len(document.devices)} device(s)",
               err=True)


def _show_value(value: Any) -> str:
    return "(empty)" if value is None else str(value)


def print_report(report: ImportReport) -> None:
    """The changes one by one (created, or old → new per attribute), then the counts."""
    for change in report.changes:
        if change.action == "unchanged":
            continue
        line = f"{change.entity} {change.entity_id}: {change.action}"
        if change.action == "updated":
            details = "; ".join(f"{f.field} {_show_value(f.old)} → {_show_value(f.new)}" for f in change.fields)
            line += f" ({details or 'now registered by the operator'})"
        typer.echo(line)
    counts = report.counts()
    typer.echo("; ".join(f"{entity}s: " + ", ".join(f"{n} {action}" for action, n in counts[entity].items())
                         for entity in counts))
    if report.devices_not_in_file:
        typer.echo(f"{report.devices_not_in_file} registered device(s) of park {report.park_id} are not in the file "
                   "and stay as they are")
    if report.dry_run:
        typer.echo("dry run: nothing was written; run again without --dry-run to apply")
    elif not report.changed:
        typer.echo("nothing to change: the registry already matches the file")
    else:
        typer.echo("imported in one transaction")


def import_registry(
    file: Annotated[Path, typer.Argument(help="Registry file: .yaml/.yml or .csv", exists=True, dir_okay=False,
                                         readable=True)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    database_url: DbOption = None,
) -> None:
    """Register a park, its sites and devices from one YAML or CSV file, all or nothing.

    Every problem of the file is listed with its line number before anything is written.
    The file states the attributes of what it names; an empty device attribute is left to the device.
    Parks, sites and devices the file does not name are left alone; `registry export` writes such a file.
    """
    from infra.db import (  # noqa: PLC0415 - lazily, as in every command
        RegistryError,
        RegistryFileError,
        import_registry,
        parse_registry,
        registry_format,
    )
    from parkpulse._registry_cli import connect, fail  # noqa: PLC0415

    try:
        fmt = registry_format(file)
    except RegistryError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    text = _decode(file.read_bytes(), file)
    try:
        parsed = parse_registry(text, fmt)
        with connect(database_url) as conn:
            report = import_registry(conn, parsed, dry_run=dry_run)
    except RegistryFileError as exc:
        raise fail(f"{file}: {exc}") from None
    except RegistryError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({**asdict(report), "counts": report.counts()}, ensure_ascii=False, indent=2,
                              default=str))
    else:
        print_report(report)
