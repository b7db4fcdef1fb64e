"""Ingest counters and their Prometheus text exposition over a tiny HTTP endpoint.

Counters are plain attributes updated by the service's single event loop (no locks needed). The HTTP
endpoint is a minimal asyncio server: ``GET /metrics`` (text format 0.0.4) and ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_PREFIX = "parkpulse_ingest_"


@dataclass(slots=True)
class IngestMetrics:
    """Running totals and gauges of one ingest instance."""

    messages_received: Counter[str] = field(default_factory=Counter)  # by topic kind
    readings_received: int = 0
    readings_stored: int = 0
    readings_duplicate: int = 0
    readings_quarantined: Counter[str] = field(default_factory=Counter)  # by reason
    messages_quarantined: Counter[str] = field(default_factory=Counter)  # by reason
    batches_committed: int = 0
    batch_seconds_sum: float = 0.0
    storage_errors: int = 0
    batches_isolated: int = 0  # batches the database refused, split to find the offending message
    batches_direct: int = 0  # batches whose readings were copied straight into readings (ingest._store)
    messages_store_refused: int = 0  # messages the database refused, quarantined as store_error
    messages_dead_lettered: int = 0  # messages written to the local dead-letter file
    messages_skipped_partition: int = 0  # acknowledged unread: another partition stores them
    quarantine_suppressed: Counter[str] = field(default_factory=Counter)  # over a sender's rate, by reason
    quarantine_pruned: int = 0
    registry_refreshes: int = 0
    feedback_sent: int = 0  # quarantine reasons published on a device's errors topic
    feedback_rate_limited: int = 0  # rejects over their device's feedback rate: counted in its next message
    feedback_dropped: Counter[str] = field(default_factory=Counter)  # not published, by cause (never the data)
    broker_reconnects: int = 0
    lag_seconds: float = 0.0  # receive → commit of the oldest message in the last batch
    pending_messages: int = 0
    mqtt_connected: bool = False
    db_connected: bool = False

    def render(self) -> str:
        """Prometheus text exposition of all metrics."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {_PREFIX}{name} {help_text}")
            lines.append(f"# TYPE {_PREFIX}{name} {kind}")
            lines.extend(f"{_PREFIX}{name}{labels} {value:g}" for labels, value in samples)

        def by_label(label: str, counts: Counter[str]) -> list[tuple[str, float]]:
            return [(f'{{{label}="{key}"}}', float(v)) for key, v in sorted(counts.items())] or [("", 0.0)]

        metric("messages_received_total", "counter", "MQTT messages received, by topic kind",
               by_label("kind", self.messages_received))
        metric("readings_received_total", "counter", "Readings received (valid or not)",
               [("", self.readings_received)])
        metric("readings_stored_total", "counter", "Readings newly stored", [("", self.readings_stored)])
        metric("readings_duplicate_total", "counter", "Readings skipped as already stored",
               [("", self.readings_duplicate)])
        metric("readings_quarantined_total", "counter", "Readings rejected, by first reason",
               by_label("reason", self.readings_quarantined))
        metric("messages_quarantined_total", "counter", "Messages kept in quarantine, by reason",
               by_label("reason", self.messages_quarantined))
        metric("batches_committed_total", "counter", "Batches committed", [("", self.batches_committed)])
        metric("batch_write_seconds_total", "counter", "Time spent writing batches",
               [("", self.batch_seconds_sum)])
        metric("storage_errors_total", "counter", "Failed batch writes (retried)", [("", self.storage_errors)])
        metric("batches_direct_total", "counter", "Batches copied straight into readings (no staging table)",
               [("", self.batches_direct)])
        metric("batches_isolated_total", "counter", "Batches refused by the database and split to isolate the cause",
               [("", self.batches_isolated)])
        metric("messages_store_refused_total", "counter", "Messages the database refused, quarantined as store_error",
               [("", self.messages_store_refused)])
        metric("messages_dead_lettered_total", "counter", "Messages written to the local dead-letter file",
               [("", self.messages_dead_lettered)])
        metric("messages_skipped_partition_total", "counter", "Messages acknowledged unread (another partition's)",
               [("", self.messages_skipped_partition)])
        metric("quarantine_suppressed_total", "counter",
               "Rejected messages over their sender's rate limit, counted instead of kept, by reason",
               by_label("reason", self.quarantine_suppressed))
        metric("quarantine_pruned_total", "counter", "Quarantine records removed by retention (age or size)",
               [("", self.quarantine_pruned)])
        metric("registry_refreshes_total", "counter", "Registry snapshots read", [("", self.registry_refreshes)])
        metric("feedback_sent_total", "counter", "Quarantine reasons published on the device's errors topic",
               [("", self.feedback_sent)])
        metric("feedback_rate_limited_total", "counter",
               "Rejects over their device's feedback rate (counted in its next feedback message)",
               [("", self.feedback_rate_limited)])
        metric("feedback_dropped_total", "counter", "Feedback messages not published, by cause",
               by_label("cause", self.feedback_dropped))
        metric("broker_reconnects_total", "counter", "Broker reconnect attempts", [("", self.broker_reconnects)])
        metric("lag_seconds", "gauge", "Receive-to-commit delay of the oldest message of the last batch",
               [("", self.lag_seconds)])
        metric("pending_messages", "gauge", "Messages received but not yet committed and acknowledged",
               [("", self.pending_messages)])
        metric("mqtt_connected", "gauge", "1 while connected to the broker", [("", float(self.mqtt_connected))])
        metric("db_connected", "gauge", "1 while the last database write succeeded",
               [("", float(self.db_connected))])
        return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves :class:`IngestMetrics` over HTTP until closed."""

    def __init__(self, metrics: IngestMetrics, host: str, port: int) -> None:
        self._metrics, self._host, self._port = metrics, host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start serving in the background."""
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        logger.info("metrics on http://%s:%d/metrics", self._host, self.port)

    async def close(self) -> None:
        """Stop serving and wait for the listener to close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path.startswith("/metrics"):
                status, body, ctype = "200 OK", self._metrics.render(), "text/plain; version=0.0.4"
            elif path.startswith("/healthz"):
                healthy = self._metrics.mqtt_connected and self._metrics.db_connected
                status = "200 OK" if healthy else "503 Service Unavailable"
                body, ctype = ("ok\n" if healthy else "degraded\n"), "text/plain"
            else:
                status, body, ctype = "404 Not Found", "not found\n", "text/plain"
            data = body.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                         "Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            logger.debug("metrics request failed", exc_info=True)
        finally:
            writer.close()
