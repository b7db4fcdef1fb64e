"""What the simulated platform knows and decides, without any I/O: tokens, stored records, faults.

The HTTP adapter (:mod:`simulators.platform._app`) calls these methods with decoded requests and the
current time, so every rule (token expiry, idempotent storage by record key keeping the highest
revision, duplicate counting, per-record rejection, fault draws) is testable without a socket.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.uplink_record import RecordAck, UplinkRecord
from schemas.uplink_wire import InstrumentRequest, UnitInfo

DownMode = Literal["up", "503", "refuse"]


class Faults(BaseModel):
    """Faults the platform injects; set at start (``--fault``) or at run time (``POST /admin/faults``)."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0,
                              description="share of data requests answered with error_status")
    error_status: int = Field(default=500, ge=500, le=599)
    hang_rate: float = Field(default=0.0, ge=0.0, le=1.0,
                             description="share of data requests that hang for hang_s")
    hang_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    lost_ack_rate: float = Field(default=0.0, ge=0.0, le=1.0,
                                 description="share of data requests stored but answered 502 (the ack is lost)")
    reject_item_codes: list[str] = Field(default_factory=list,
                                         description="data item codes rejected per record")
    reject_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of records rejected at random")
    refuse_batch_item_codes: list[str] = Field(
        default_factory=list, description="data item codes for which the whole request is refused (HTTP 400)")
    expire_tokens: bool = Field(default=False,
                                description="one-shot: every token issued so far expires now")
    down: DownMode = Field(default="up",
                           description="503: answer 503 to everything; refuse: close the listening socket")
    down_for_s: float | None = Field(default=None, gt=0,
                                     description="come back up by itself after this many seconds")
    seed: int | None = Field(default=None, description="seed of the fault draws (reproducible runs)")


@dataclass
class Stored:
    """The highest revision of one record key, and how often the key arrived."""

    record: UplinkRecord
    receipts: int = 1
    duplicates: int = 0          # the same (key, revision) arrived again
    replaced: int = 0            # a higher revision replaced a lower one


@dataclass
class Stats:
    """Counters the admin endpoint exposes (tests check no loss / no duplicates with them)."""

    requests: int = 0
    data_requests: int = 0
    records_received: int = 0
    records_accepted: int = 0
    records_rejected: int = 0
    duplicates: int = 0
    stale_revisions: int = 0
    tokens_issued: int = 0
    expired_token_answers: int = 0
    invalid_requests: int = 0
    injected_errors: int = 0
    injected_hangs: int = 0
    lost_acks: int = 0
    down_answers: int = 0


@dataclass
class PlatformState:
    """One simulated platform's memory. ``clock`` returns seconds (monotonic by default; tests may move it)."""

    clock: Callable[[], float]
    credentials: dict[str, str] = field(default_factory=dict)   # empty: any client_id/secret pair is accepted
    token_ttl_s: float = 7200.0
    faults: Faults = field(default_factory=Faults)
    records: dict[str, Stored] = field(default_factory=dict)
    rejects: list[tuple[UplinkRecord, str]] = field(default_factory=list)
    registers: dict[str, InstrumentRequest] = field(default_factory=dict)
    units: dict[str, UnitInfo] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)
    down_until: float | None = None
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)   # token -> (client_id, expires at)
    _rng: random.Random = field(default_factory=random.Random)

    # ------------------------------------------------------------------------------------ faults
    def set_faults(self, faults: Faults) -> None:
        """Apply a new fault set; ``expire_tokens`` acts once, ``down_for_s`` starts the down period now."""
        if faults.seed is not None:
            self._rng.seed(faults.seed)
        if faults.expire_tokens:
            self._tokens = {token: (client, self.clock() - 1.0) for token, (client, _) in self._tokens.items()}
        self.down_until = self.clock() + faults.down_for_s if faults.down != "up" and faults.down_for_s else None
        self.faults = faults.model_copy(update={"expire_tokens": False})

    def is_down(self) -> DownMode:
        """The current down mode; a timed down period ends by itself."""
        if self.faults.down != "up" and self.down_until is not None and self.clock() >= self.down_until:
            self.faults = self.faults.model_copy(update={"down": "up", "down_for_s": None})
            self.down_until = None
        return self.faults.down

    def draw(self, rate: float) -> bool:
        """One fault draw with probability ``rate``."""
        return rate > 0.0 and self._rng.random() < rate

    # ------------------------------------------------------------------------------------ tokens
    def issue_token(self, client_id: str, secret: str) -> tuple[str, int] | None:
        """(token, lifetime s) for good credentials, None for bad ones."""
        expected = self.credentials.get(client_id)
        if self.credentials and (expected is None or not secrets.compare_digest(expected, secret)):
            return None
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (client_id, self.clock() + self.token_ttl_s)
        self.stats.tokens_issued += 1
        return token, max(1, int(self.token_ttl_s))

    def check_token(self, token: str | None) -> Literal["ok", "expired", "invalid"]:
        """Whether ``token`` may be used now."""
        if token is None or token not in self._tokens:
            return "invalid"
        _, expires_at = self._tokens[token]
        if self.clock() >= expires_at:
            self.stats.expired_token_answers += 1
            return "expired"
        return "ok"

    def token_client(self, token: str) -> str:
        """The client id a valid token was issued to."""
        return self._tokens[token][0]

    # ------------------------------------------------------------------------------------ records
    def rejection(self, record: UplinkRecord) -> str | None:
        """Why the platform refuses ``record`` (alignment rules and injected rejects), or None."""
        start = record.period_start
        if record.data_item_code in self.faults.reject_item_codes:
            return f"unknown data item code {record.data_item_code} (数据项编码不存在)"
        if record.period in ("day", "month") and (start.hour, start.minute, start.second) != (0, 0, 0):
            return f"{record.period} value must start at local 00:00, got {start.isoformat()}"
        if record.period == "month" and start.day != 1:
            return f"month value must start on the 1st, got {start.date().isoformat()}"
        if record.period == "15min" and (start.minute % 15 or start.second):
            return f"15-minute value must start on a quarter hour, got {start.isoformat()}"
        if self.draw(self.faults.reject_rate):
            return "rejected by the platform (injected fault)"
        return None

    def receive(self, records: tuple[UplinkRecord, ...]) -> list[RecordAck]:
        """Store each record idempotently (highest revision wins) and answer per record."""
        acks: list[RecordAck] = []
        self.stats.data_requests += 1
        for record in records:
            self.stats.records_received += 1
            reason = self.rejection(record)
            if reason is not None:
                self.stats.records_rejected += 1
                self.rejects.append((record, reason))
                acks.append(RecordAck(record.record_key, record.revision, False, reason))
                continue
            self.stats.records_accepted += 1
            stored = self.records.get(record.record_key)
            if stored is None:
                self.records[record.record_key] = Stored(record)
            else:
                stored.receipts += 1
                if record.revision == stored.record.revision:
                    stored.duplicates += 1
                    self.stats.duplicates += 1
                elif record.revision > stored.record.revision:
                    stored.record = record
                    stored.replaced += 1
                else:
                    self.stats.stale_revisions += 1
            acks.append(RecordAck(record.record_key, record.revision, True, None))
        return acks
