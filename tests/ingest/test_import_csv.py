"""CSV backfill goes through the MQTT validation, quarantine and idempotent write path."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ingest import CsvFormatError, ReadingStore, import_readings_csv
from ingest._import import read_chunks
from tests.ingest.helpers import count_quarantine, count_readings

CSV = """device_id,ts,metric,value,unit,quality
m-1,2025-10-01T00:00:00+08:00,active_energy_import,100.0,kWh,good
m-1,2025-10-01T00:15:00+08:00,active_energy_import,100.5,kWh,
m-2,2025-10-01T00:00:00+08:00,active_energy_import,2500,Wh,estimated
m-1,2025-10-01T00:30:00+08:00,active_energy_import,NaN,kWh,
m-1,2025-10-01T00:45:00+08:00,bogus_metric,1,kWh,
m-2,2025-10-01T00:15:00,active_energy_import,2.6,kWh,
m-2,2025-10-01T00:30:00+08:00,active_energy_import,abc,kWh,
m-1,2025-10-01T01:00:00+08:00,active_energy_import,101.5,kWh,
"""


def test_rows_are_grouped_per_device_in_order():
    chunks = list(read_chunks(CSV, park_id="p", chunk=2))
    assert [(c.device_id, c.first_line, len(c.readings)) for c in chunks] == [
        ("m-1", 2, 2), ("m-2", 4, 2), ("m-1", 5, 2), ("m-1", 9, 1), ("m-2", 8, 1)]
    assert chunks[0].readings[0] == {"ts": "2025-10-01T00:00:00+08:00", "metric": "active_energy_import",
                                     "value": 100.0, "unit": "kWh", "quality": "good"}


def test_format_errors_are_clear():
    with pytest.raises(CsvFormatError, match="missing columns"):
        list(read_chunks("device_id,ts,value\n", park_id="p", chunk=10))
    with pytest.raises(CsvFormatError, match="pass --park"):
        list(read_chunks("device_id,ts,metric,value,unit\n", park_id=None, chunk=10))


@pytest.mark.services
async def test_import_stores_good_rows_quarantines_bad_ones_and_is_idempotent(database_url, park_id, db_conn):
    store = ReadingStore(database_url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    try:
        first = await import_readings_csv(CSV, store, park_id=park_id, now=now)
        second = await import_readings_csv(CSV, store, park_id=park_id, now=now)
    finally:
        await store.close()
    assert (first.rows, first.stored, first.duplicates, first.rejected_rows) == (8, 4, 0, 4)
    assert (second.stored, second.duplicates) == (0, 4)
    assert count_readings(db_conn, park_id) == 4
    assert first.reasons == {"non_finite_value": 2, "schema_violation": 2}
    values = db_conn.execute(
        """SELECT d.device_id, r.value, r.quality FROM readings r JOIN series s USING (series_id)
           JOIN devices d USING (device_key) WHERE d.park_id = %s ORDER BY d.device_id, r.ts""",
        (park_id,)).fetchall()
    assert values == [("m-1", 100.0, 0), ("m-1", 100.5, 0), ("m-1", 101.5, 0), ("m-2", 2.5, 1)]  # Wh -> kWh
    raw, source, detail = db_conn.execute(
        "SELECT raw, source, detail FROM quarantine WHERE park_id = %s AND device_id = 'm-1' ORDER BY quarantine_id",
        (park_id,)).fetchone()
    assert source == "import"
    assert b"NaN" in bytes(raw)
    assert bytes(raw).startswith(b"device_id,ts,metric")  # the CSV lines, not a synthetic message
    assert detail.startswith("CSV line 5: non_finite_value")  # the 4th m-1 row is line 5 of the file
    assert "CSV line 6: unknown_metric" in detail
    assert count_quarantine(db_conn, park_id) == 4  # two per import run, both kept


@pytest.mark.services
def test_cli_imports_a_file(database_url, park_id, db_conn, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(CSV.replace("device_id,", "park_id,device_id,").replace("\nm-", f"\n{park_id},m-"))
    result = subprocess.run(
        [sys.executable, "-m", "parkpulse.cli", "import", "readings", str(path), "--database-url", database_url],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "4 stored" in result.stdout
    assert count_readings(db_conn, park_id) == 4
