"""What the OpenADR 3 VTN stand-in holds: clients, tokens, programs, events, subscriptions, reports, VENs.

In memory and pure (no I/O): the HTTP layer (``_app``) calls these methods and sends the notifications
they return. Objects are kept exactly as the spec's JSON, with the VTN-provisioned fields (``id``,
``createdDateTime``, ``modificationDateTime``, ``objectType``) filled in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Role = Literal["ven", "bl"]
BL_CLIENT_ID = "bl-admin"
BL_CLIENT_SECRET = "bl-secret-" + "0" * 16  # the stand-in's built-in business-logic credentials (test only)
#: Spec collection name → objectType.
OBJECT_TYPES: dict[str, str] = {"programs": "PROGRAM", "events": "EVENT", "reports": "REPORT",
                                "subscriptions": "SUBSCRIPTION", "vens": "VEN"}
#: HTTP verb of a change → the subscription operation it notifies.
_OPERATION = {"POST": "CREATE", "PUT": "UPDATE", "DELETE": "DELETE"}


def iso_now(clock: Callable[[], datetime]) -> str:
    """The clock's time as an RFC 3339 UTC string with milliseconds (modificationDateTime)."""
    return clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Client:
    """OAuth2 client credentials the VTN issued: a VEN, or the business logic (``bl``) that writes events."""

    client_id: str
    client_secret: str
    role: Role


@dataclass(frozen=True, slots=True)
class Notification:
    """One webhook POST to send: where, with which bearer token, and the ``notification`` body."""

    url: str
    bearer_token: str | None
    body: dict[str, Any]


@dataclass
class VtnState:
    """The stand-in's data; ``supports_subscriptions`` False makes it a polling-only VTN."""

    clients: dict[str, Client] = field(default_factory=dict)
    supports_subscriptions: bool = True
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    tokens: dict[str, Client] = field(default_factory=dict)
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in OBJECT_TYPES})
    rejected_requests: list[str] = field(default_factory=list)
    response_problems: list[str] = field(default_factory=list)
    delivered: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        """Every stand-in has the built-in business-logic client (``BL_CLIENT_ID``) unless given another."""
        if not any(c.role == "bl" for c in self.clients.values()):
            self.add_client(BL_CLIENT_ID, BL_CLIENT_SECRET, "bl")

    def add_client(self, client_id: str, client_secret: str, role: Role) -> Client:
        """Register client credentials."""
        client = Client(client_id, client_secret, role)
        self.clients[client_id] = client
        return client

    def issue_token(self, client_id: str, client_secret: str) -> str | None:
        """A new bearer token for valid credentials, else None."""
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, client_secret):
            return None
        token = secrets.token_urlsafe(24)
        self.tokens[token] = client
        return token

    def revoke_tokens(self) -> None:
        """Forget every token (clients must fetch new ones; tests use it to exercise re-authentication)."""
        self.tokens.clear()

    def _new_id(self, collection: str) -> str:
        self._counter += 1
        return f"{collection.rstrip('s')}-{self._counter}"

    def search(self, collection: str, *, program_id: str | None = None, target_type: str | None = None,
             target_values: Iterable[str] = (), skip: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Objects of a collection, oldest first, filtered like the spec's search operations."""
        wanted = set(target_values)
        found = [obj for obj in self.objects[collection].values()
                 if (program_id is None or obj.get("programID") == program_id)
                 and (target_type is None or _targeted(obj, target_type, wanted))]
        return found[skip:skip + limit]

    def get(self, collection: str, object_id: str) -> dict[str, Any] | None:
        """One object by id."""
        return self.objects[collection].get(object_id)

    def create(self, collection: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[Notification]]:
        """Store a new object (VTN-provisioned fields set); return it and the notifications to send."""
        now = iso_now(self.clock)
        obj = {**body, "id": self._new_id(collection), "createdDateTime": now, "modificationDateTime": now,
               "objectType": OBJECT_TYPES[collection]}
        self.objects[collection][obj["id"]] = obj
        return obj, self._notifications("POST", obj)

    def replace(self, collection: str, object_id: str,
                body: Mapping[str, Any]) -> tuple[dict[str, Any], list[Notification]] | None:
        """Replace an object (``id`` and ``createdDateTime`` kept); None when it does not exist."""
        old = self.objects[collection].get(object_id)
        if old is None:
            return None
        obj = {**body, "id": object_id, "createdDateTime": old["createdDateTime"],
               "modificationDateTime": iso_now(self.clock), "objectType": OBJECT_TYPES[collection]}
        self.objects[collection][object_id] = obj
        return obj, self._notifications("PUT", obj)

    def delete(self, collection: str, object_id: str) -> tuple[dict[str, Any], list[Notification]] | None:
        """Remove an object; None when it does not exist."""
        obj = self.objects[collection].pop(object_id, None)
        if obj is None:
            return None
        return obj, self._notifications("DELETE", obj)

    def _notifications(self, verb: str, obj: Mapping[str, Any]) -> list[Notification]:
        """Webhook POSTs for every subscription that asked for this object type and operation."""
        out: list[Notification] = []
        object_type, operation = obj["objectType"], _OPERATION[verb]
        for sub in self.objects["subscriptions"].values():
            if object_type != "PROGRAM" and obj.get("programID") not in (None, sub["programID"]):
                continue
            for op in sub["objectOperations"]:
                if object_type in op["objects"] and operation in op["operations"]:
                    body = {"objectType": object_type, "operation": verb, "object": dict(obj)}
                    out.append(Notification(op["callbackUrl"], op.get("bearerToken"), body))
        return out


def _targeted(obj: Mapping[str, Any], target_type: str, values: set[str]) -> bool:
    """An object without targets addresses everyone; otherwise one of its targets must match."""
    targets = obj.get("targets") or []
    if not targets:
        return True
    return any(t.get("type") == target_type and (not values or values & {str(v) for v in t.get("values", [])})
               for t in targets)
