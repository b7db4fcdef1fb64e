"""Ordered, recorded SQL migrations from ``schemas/sql`` (``parkpulse db migrate``).

Each ``NNNN_name.sql`` file runs once, in its own transaction, and is recorded with its SHA-256 in
``schema_migrations``. Re-running is a no-op; a recorded file whose content changed is an error (edit by
adding a new migration, never by rewriting an applied one). A session advisory lock serialises concurrent
migrators, so two ingest instances starting together cannot race.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Final

import psycopg

logger = logging.getLogger(__name__)

_LOCK_KEY: Final = 0x5041524B  # "PARK"
_CREATE_LEDGER: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(Exception):
    """A migration file is malformed, was changed after being applied, or failed to run."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL migration file."""

    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        """Content hash recorded when the migration is applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """All migration files shipped in ``schemas/sql``, ordered by version."""
    found: list[Migration] = []
    for entry in resources.files("schemas").joinpath("sql").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        prefix, _, rest = entry.name.partition("_")
        if not prefix.isdigit():
            raise MigrationError(f"migration {entry.name!r} must start with a number, like 0001_name.sql")
        found.append(Migration(int(prefix), rest.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


def applied_migrations(conn: psycopg.Connection) -> dict[int, str]:
    """Version → sha256 of the migrations recorded in the database."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return {}
        cur.execute("SELECT version, sha256 FROM schema_migrations ORDER BY version")
        return {int(v): str(h) for v, h in cur.fetchall()}


def _enable_timescaledb(conn: psycopg.Connection) -> None:
    """Create the TimescaleDB extension when the server offers it; plain PostgreSQL works without it."""
    row = conn.execute(
        "SELECT installed_version IS NOT NULL, true FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None or row[0]:
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.errors.InsufficientPrivilege:
        logger.warning("TimescaleDB is available but this role may not create it; readings stays a plain table")


def migrate(conninfo: str) -> list[str]:
    """Apply every pending migration to the database at ``conninfo``; return the names applied."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_CREATE_LEDGER)
            _enable_timescaledb(conn)
            done = applied_migrations(conn)
            for mig in available_migrations():
                recorded = done.get(mig.version)
                if recorded is not None:
                    if recorded != mig.sha256:
                        raise MigrationError(
                            f"migration {mig.version:04d}_{mig.name} changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                logger.info("applying migration %04d_%s", mig.version, mig.name)
                try:
                    with conn.transaction():
                        conn.execute(mig.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                            (mig.version, mig.name, mig.sha256),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {mig.version:04d}_{mig.name} failed: {exc}") from exc
                applied_now.append(f"{mig.version:04d}_{mig.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
