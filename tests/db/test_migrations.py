"""Migrations: ordered, recorded, idempotent, tamper-evident; TimescaleDB when present, plain PostgreSQL too."""

from __future__ import annotations

import psycopg
import pytest

from infra.db import MigrationError, applied_migrations, available_migrations, migrate

pytestmark = pytest.mark.services


def test_migrations_are_numbered_and_ordered():
    versions = [m.version for m in available_migrations()]
    assert versions == sorted(versions)
    assert versions[0] == 1


def test_migrate_is_recorded_and_safe_to_rerun(scratch_database_url):
    first = migrate(scratch_database_url)
    assert first[0] == "0001_core"
    assert migrate(scratch_database_url) == []
    with psycopg.connect(scratch_database_url) as conn:
        assert set(applied_migrations(conn)) == {m.version for m in available_migrations()}
        hypertables = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables").fetchall()
    assert ("readings",) in hypertables


def test_a_changed_applied_migration_is_refused(scratch_database_url):
    migrate(scratch_database_url)
    with psycopg.connect(scratch_database_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(scratch_database_url)


def test_schema_runs_on_plain_postgresql(plain_postgres_url):
    applied = migrate(plain_postgres_url)
    assert applied[0] == "0001_core"
    with psycopg.connect(plain_postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (0,)
        conn.execute("INSERT INTO parks (park_id) VALUES ('p')")
        conn.execute("INSERT INTO devices (park_id, device_id) VALUES ('p', 'd')")
        conn.execute("INSERT INTO series (device_key, metric, unit) "
                     "SELECT device_key, 'active_power', 'kW' FROM devices")
        for _ in range(2):  # the primary key makes the second insert a no-op
            conn.execute("INSERT INTO readings SELECT series_id, '2026-01-01T00:00:00Z', 1.5, 0 FROM series "
                         "ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)
