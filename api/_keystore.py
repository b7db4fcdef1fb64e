"""Where API clients live: PostgreSQL (``api_clients``, ``api_client_parks``) or memory (tests, demos).

Every client has scopes (``api_clients.scopes``): ``read`` for GET endpoints, ``write`` for operator
actions. Keys created before scopes existed are read-only (the column's default).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from api._keys import DEFAULT_SCOPES, SCOPES, ApiClient, StoredKey, make_stored_key, new_key
from api.errors import KeyStoreError


class KeyStore(Protocol):
    """API client storage."""

    def get(self, client_id: str) -> StoredKey | None:
        """The client's hash material, or None."""
        ...

    def create(
        self, name: str, park_ids: Collection[str], *, expires_at: datetime | None = None,
        scopes: Collection[str] = DEFAULT_SCOPES,
    ) -> tuple[ApiClient, str]:
        """A new client with ``scopes`` and its full key (shown once)."""
        ...

    def revoke(self, client_id: str) -> None:
        """Revoke a client's key now."""
        ...

    def list_clients(self) -> list[ApiClient]:
        """All clients, newest first."""
        ...


def checked_scopes(scopes: Collection[str]) -> frozenset[str]:
    """``scopes`` as a set; raises :class:`KeyStoreError` when empty or naming an unknown scope."""
    wanted = frozenset(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown or not wanted:
        raise KeyStoreError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {sorted(wanted)}")
    return wanted


@dataclass
class MemoryKeyStore:
    """Clients in a dict."""

    keys: dict[str, StoredKey] = field(default_factory=dict)

    def get(self, client_id: str) -> StoredKey | None:
        """The client's hash material, or None."""
        return self.keys.get(client_id)

    def create(
        self, name: str, park_ids: Collection[str], *, expires_at: datetime | None = None,
        scopes: Collection[str] = DEFAULT_SCOPES,
    ) -> tuple[ApiClient, str]:
        """A new client and its full key."""
        client_id, key = new_key()
        client = ApiClient(client_id, name, frozenset(park_ids), expires_at, scopes=checked_scopes(scopes))
        self.keys[client_id] = make_stored_key(client, key)
        return client, key

    def revoke(self, client_id: str) -> None:
        """Mark revoked."""
        stored = self.keys.get(client_id)
        if stored is None:
            raise KeyStoreError(f"no API client {client_id!r}")
        self.keys[client_id] = replace(stored, client=replace(stored.client, revoked_at=datetime.now(UTC)))

    def list_clients(self) -> list[ApiClient]:
        """All clients."""
        return [k.client for k in self.keys.values()]


class PgKeyStore:
    """Clients in PostgreSQL; one short connection per call (keys are cached by the API anyway)."""

    def __init__(self, conninfo: str) -> None:
        """Remember the connection string."""
        self.conninfo = conninfo

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=True, application_name="parkpulse-api-keys")

    def get(self, client_id: str) -> StoredKey | None:
        """The client's hash material, or None."""
        with self._connect() as conn:
            row = conn.execute(
                """SELECT c.name, c.key_hash, c.key_salt, c.kdf, c.expires_at, c.revoked_at,
                          coalesce(array_agg(p.park_id) FILTER (WHERE p.park_id IS NOT NULL), '{}'), c.scopes
                   FROM api_clients c LEFT JOIN api_client_parks p ON p.client_id = c.client_id
                   WHERE c.client_id = %s GROUP BY c.client_id""",
                (client_id,),
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE api_clients SET last_used_at = now() WHERE client_id = %s", (client_id,))
        if row is None:
            return None
        name, key_hash, salt, kdf, expires_at, revoked_at, parks, scopes = row
        client = ApiClient(client_id, name, frozenset(parks), expires_at, revoked_at, frozenset(scopes))
        return StoredKey(client, bytes(key_hash), bytes(salt), kdf)

    def create(
        self, name: str, park_ids: Collection[str], *, expires_at: datetime | None = None,
        scopes: Collection[str] = DEFAULT_SCOPES,
    ) -> tuple[ApiClient, str]:
        """Insert a client scoped to ``park_ids`` with ``scopes`` and return its key.

        The parks need not be registered yet (``parkpulse api-keys create`` refuses that for read-only keys,
        where it is most likely a typo; a write key may register its park through the API).
        """
        client_id, key = new_key()
        client = ApiClient(client_id, name, frozenset(park_ids), expires_at, scopes=checked_scopes(scopes))
        stored = make_stored_key(client, key)
        try:
            with self._connect() as conn, conn.transaction():
                conn.execute(
                    """INSERT INTO api_clients (client_id, name, key_hash, key_salt, kdf, expires_at, scopes)
                       VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                    (client_id, name, stored.key_hash, stored.key_salt, stored.kdf, expires_at,
                     sorted(client.scopes)),
                )
                for park_id in sorted(park_ids):
                    conn.execute(
                        "INSERT INTO api_client_parks (client_id, park_id) VALUES (%s, %s)", (client_id, park_id)
                    )
        except psycopg.errors.ForeignKeyViolation as exc:  # a database migrated before 0005 keeps the foreign key
            raise KeyStoreError(f"unknown park in {sorted(park_ids)}: {exc.diag.message_detail}") from None
        return client, key

    def unregistered_parks(self, park_ids: Collection[str]) -> list[str]:
        """Those of ``park_ids`` that are not registered parks (sorted)."""
        with self._connect() as conn:
            known = {r[0] for r in conn.execute("SELECT park_id FROM parks WHERE park_id = ANY(%s)",
                                                (sorted(park_ids),))}
        return sorted(set(park_ids) - known)

    def revoke(self, client_id: str) -> None:
        """Set revoked_at = now()."""
        with self._connect() as conn:
            cur = conn.execute(
                "UPDATE api_clients SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL", (client_id,)
            )
            if cur.rowcount == 0:
                raise KeyStoreError(f"no active API client {client_id!r}")

    def list_clients(self) -> list[ApiClient]:
        """All clients, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                """SELECT c.client_id, c.name, c.expires_at, c.revoked_at,
                          coalesce(array_agg(p.park_id) FILTER (WHERE p.park_id IS NOT NULL), '{}'), c.scopes
                   FROM api_clients c LEFT JOIN api_client_parks p ON p.client_id = c.client_id
                   GROUP BY c.client_id ORDER BY c.created_at DESC"""
            ).fetchall()
        return [ApiClient(r[0], r[1], frozenset(r[4]), r[2], r[3], frozenset(r[5])) for r in rows]
