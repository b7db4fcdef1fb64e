"""Utility API keys: ``pp_<client id>_<secret>``, shown once, stored as a salted scrypt hash.

The client id is the public, indexed part (lookup without scanning); only the secret is hashed, with
``hashlib.scrypt`` (n=2^14, r=8, p=1, 32-byte key, 16-byte random salt) and compared in constant time.
scrypt costs ~20-50 ms per check by design, so verified keys are cached in memory for a short TTL under
the SHA-256 of the full key; revocation therefore takes effect within that TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from api.errors import KeyFormatError

KEY_PREFIX: Final = "pp"
#: What a key may do: ``read`` every GET; ``write`` operator actions (quarantine replay).
SCOPES: Final = ("read", "write")
DEFAULT_SCOPES: Final = frozenset({"read"})
KDF: Final = "scrypt:n=16384,r=8,p=1"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _DKLEN = 2**14, 8, 1, 32
_CLIENT_RE: Final = re.compile(r"^[a-z0-9]{8,32}$")
_SECRET_RE: Final = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


@dataclass(frozen=True, slots=True)
class ApiClient:
    """An authenticated utility: who it is, which parks it may see and what it may do there (scopes)."""

    client_id: str
    name: str
    park_ids: frozenset[str]
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    scopes: frozenset[str] = DEFAULT_SCOPES


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the store keeps for a client: the hash material, never the secret."""

    client: ApiClient
    key_hash: bytes
    key_salt: bytes
    kdf: str = KDF


def new_key() -> tuple[str, str]:
    """A fresh (client id, full key) pair; the full key is shown to the operator once."""
    client_id = secrets.token_hex(6)
    return client_id, f"{KEY_PREFIX}_{client_id}_{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> tuple[str, str]:
    """(client id, secret) of a presented key; raises :class:`KeyFormatError` on anything else."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not _CLIENT_RE.match(parts[1]) or not _SECRET_RE.match(parts[2]):
        raise KeyFormatError("API key must look like pp_<client id>_<secret>")
    return parts[1], parts[2]


def hash_secret(secret: str, salt: bytes, kdf: str = KDF) -> bytes:
    """scrypt hash of ``secret`` with ``salt`` (only the current KDF parameters are supported)."""
    if kdf != KDF:
        raise KeyFormatError(f"unsupported key derivation {kdf!r}")
    return hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_DKLEN)


def make_stored_key(client: ApiClient, key: str) -> StoredKey:
    """Hash material for ``key`` (whose client id must match ``client``)."""
    client_id, secret = parse_key(key)
    if client_id != client.client_id:
        raise KeyFormatError("key does not belong to this client")
    salt = secrets.token_bytes(16)
    return StoredKey(client, hash_secret(secret, salt), salt)


def verify(stored: StoredKey, secret: str) -> bool:
    """Constant-time comparison of the presented secret against the stored hash."""
    try:
        candidate = hash_secret(secret, stored.key_salt, stored.kdf)
    except KeyFormatError:
        return False
    return hmac.compare_digest(candidate, stored.key_hash)


@dataclass
class VerifiedKeyCache:
    """Recently verified keys (by SHA-256 of the full key) → client, for ``ttl_s`` seconds."""

    ttl_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[bytes, tuple[float, ApiClient]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def get(self, key: str) -> ApiClient | None:
        """The cached client for ``key`` if still fresh."""
        digest = self._digest(key)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if self.clock() - entry[0] > self.ttl_s:
                del self._entries[digest]
                return None
            return entry[1]

    def put(self, key: str, client: ApiClient) -> None:
        """Remember a verified key."""
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[self._digest(key)] = (self.clock(), client)
