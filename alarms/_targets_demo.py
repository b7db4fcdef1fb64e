"""What ``make demo`` needs from targets and 预警: set the demo park's targets, evaluate, print the table.

:func:`set_demo_targets` records ``alarms/data/demo_targets.yaml`` for the demo's park and year (the file
names 2026; the demo moves it to the year it runs in). :func:`print_projection` evaluates and prints the
projection table (80-column friendly) with each quantity's method and back-test error.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Final

import psycopg
from rich.console import Console

from alarms._projection_render import method_lines, to_table
from alarms._projection_store import ProjectionReport, build_report
from alarms._targets_file import parse_targets
from alarms._targets_store import RecordResult, local_today, park_timezone, record_targets
from alarms._warning import load_warning_policy
from alarms._warning_store import evaluate_warnings

DEMO_TARGETS_FILE: Final = Path(__file__).parent / "data" / "demo_targets.yaml"


def set_demo_targets(conn: psycopg.Connection[Any], park_id: str, year: int | None = None,
                     file: Path = DEMO_TARGETS_FILE) -> list[RecordResult]:
    """Record the demo targets for ``park_id`` and ``year`` (default: the park's current year); idempotent."""
    year = year or local_today(park_timezone(conn, park_id)).year
    targets = [replace(t, park_id=park_id, year=year, valid_from=None)
               for t in parse_targets(file.read_text(encoding="utf-8"), file.name, park_id)]
    return record_targets(conn, targets, recorded_by="demo")


def print_projection(conn: psycopg.Connection[Any], park_id: str, console: Console, *, as_of: date | None = None,
                     evaluate: bool = True) -> ProjectionReport:
    """Evaluate the park's running targets (when ``evaluate``), then print the projection table and methods."""
    policy = load_warning_policy()
    report = build_report(conn, park_id, (as_of or local_today(park_timezone(conn, park_id))).year, policy,
                          as_of=as_of)
    if evaluate:
        evaluate_warnings(conn, report, policy)
        report = build_report(conn, park_id, report.year, policy, as_of=report.as_of)
    console.print(to_table(report, compact=True))
    for line in method_lines(report):
        console.print(f"  {line}", markup=False)
    return report
