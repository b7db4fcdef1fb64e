"""``parkpulse bench aggregation`` end to end on a tiny fleet: the CLI runs the script against the real
database and its JSON line carries figures that agree with the data it loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.services, pytest.mark.slow]

METERS, DAYS = 4, 2


def test_bench_aggregation_prints_consistent_figures(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parkpulse.cli", "bench", "aggregation", "--database-url", database_url,
         "--meters", str(METERS), "--days", str(DAYS), "--incremental-runs", "1"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["readings"] == METERS * (DAYS * 96 + 1)
    assert figures["backfill_intervals"] == METERS * DAYS * 96
    assert figures["polars_daily_rows"] == figures["sql_daily_rows"]
    # the SQL path has no VEE (resets and wraps are clamped), so the totals agree only to within 1 %
    assert figures["polars_kwh"] == pytest.approx(figures["sql_kwh"], rel=1e-2)
    assert figures["polars_kwh"] > 0
    assert len(figures["incremental_s"]) == 1
