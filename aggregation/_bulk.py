"""Bulk data movement between PostgreSQL and Polars through ADBC (Arrow), the jobs' only heavy I/O.

Measured here (2 cores, loopback): reading through ADBC into Polars ran at about 2.3 M rows/s against
about 1 M rows/s for ``COPY … TO STDOUT (FORMAT CSV)`` + ``pl.read_csv``, and ADBC ingest at about
0.8 M rows/s against 0.56 M rows/s for a CSV ``COPY FROM`` into a table with a primary key.

Writes go to a temporary table first and are merged with plain SQL in the same transaction, so a result
is replaced atomically (delete the recomputed range, insert the new rows) and a crash leaves the previous
results intact. The :class:`Bulk` connection is not autocommit: call :meth:`Bulk.commit`.
"""

from __future__ import annotations

import logging
import re
from types import TracebackType
from typing import Any, Final, Self

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import polars as pl

from aggregation.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

_IDENT: Final = re.compile(r"^[a-z_][a-z0-9_]*$")


class Bulk:
    """One ADBC connection used for Arrow reads, temporary-table ingest and the merge statements."""

    def __init__(self, database_url: str) -> None:
        try:
            self._conn = adbc.connect(database_url)
        except adbc_driver_manager.Error as exc:
            raise StoreUnavailableError(f"cannot connect to the database: {exc}") from exc
        self.execute("SET TimeZone = 'UTC'")
        # the jobs send many short statements: JIT compilation (triggered by cost estimates, e.g. with a scan
        # type disabled) costs ~0.5 s a statement and never pays back here
        self.execute("SET jit = off")
        self.commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.rollback()
        self.close()

    def read(self, sql: str, schema: pl.Schema | None = None, params: tuple[Any, ...] | None = None) -> pl.DataFrame:
        """Run ``sql`` (``$1``-style parameters) and return a DataFrame, cast to ``schema`` when given."""
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            table = cur.fetch_arrow_table()
        df = pl.DataFrame(pl.from_arrow(table))
        if schema is not None:
            if df.height == 0 and df.width == 0:
                return schema.to_frame()
            df = df.cast(dict(schema)).select(schema.names())  # type: ignore[arg-type]
        return df

    def execute(self, sql: str, params: tuple[Any, ...] | None = None) -> int:
        """Execute one statement (``$1``-style parameters); returns the affected row count or -1."""
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return int(cur.rowcount)

    def stage(self, name: str, df: pl.DataFrame) -> int:
        """Replace temporary table ``name`` with the contents of ``df``; returns the rows written."""
        if not _IDENT.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")
        self.execute(f"DROP TABLE IF EXISTS {name}")
        with self._conn.cursor() as cur:
            written = cur.adbc_ingest(name, df.to_arrow(), mode="create", temporary=True)
        return int(written if written is not None and written >= 0 else df.height)

    def append(self, table: str, df: pl.DataFrame) -> int:
        """Append ``df`` to the existing table ``table`` by binary COPY (columns matched by name)."""
        if not _IDENT.match(table):
            raise ValueError(f"not a plain identifier: {table!r}")
        with self._conn.cursor() as cur:
            written = cur.adbc_ingest(table, df.to_arrow(), mode="append")
        return int(written if written is not None and written >= 0 else df.height)

    def commit(self) -> None:
        """Commit the open transaction."""
        self._conn.commit()

    def rollback(self) -> None:
        """Roll back the open transaction (no-op on a broken connection)."""
        try:
            self._conn.rollback()
        except adbc_driver_manager.Error:
            logger.warning("rollback failed; the connection is probably broken", exc_info=True)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
