"""Uplink counters and gauges per endpoint, in the Prometheus text format, and a tiny ``/metrics`` server.

Updated by the worker's single event loop (no locks). Names: ``parkpulse_uplink_backlog`` (records waiting),
``parkpulse_uplink_acked_total``, ``parkpulse_uplink_rejected_total``, ``parkpulse_uplink_send_errors_total``
and ``parkpulse_uplink_oldest_unacked_age_seconds``, each labelled ``endpoint``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field

_PREFIX = "parkpulse_uplink_"


@dataclass(slots=True)
class UplinkMetrics:
    """Running totals (since start) and the last known queue gauges, per endpoint."""

    acked: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    send_errors: Counter[str] = field(default_factory=Counter)
    backlog: dict[str, int] = field(default_factory=dict)
    oldest_age_s: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        """Prometheus text exposition (format 0.0.4)."""
        lines: list[str] = []
        endpoints = sorted(set(self.backlog) | set(self.acked) | set(self.rejected) | set(self.send_errors))

        def metric(name: str, kind: str, help_text: str, values: dict[str, float]) -> None:
            lines.append(f"# HELP {_PREFIX}{name} {help_text}")
            lines.append(f"# TYPE {_PREFIX}{name} {kind}")
            lines.extend(f'{_PREFIX}{name}{{endpoint="{ep}"}} {values.get(ep, 0.0):g}' for ep in endpoints)

        metric("backlog", "gauge", "Records waiting for the platform's acknowledgement",
               {k: float(v) for k, v in self.backlog.items()})
        metric("oldest_unacked_age_seconds", "gauge", "Age of the oldest unacknowledged record's period start",
               dict(self.oldest_age_s))
        metric("acked_total", "counter", "Records acknowledged by the platform", {k: float(v) for k, v in
                                                                                   self.acked.items()})
        metric("rejected_total", "counter", "Records rejected by the platform", {k: float(v) for k, v in
                                                                                 self.rejected.items()})
        metric("send_errors_total", "counter", "Failed upload attempts (5xx, timeouts, connection errors)",
               {k: float(v) for k, v in self.send_errors.items()})
        return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` over plain HTTP on ``host:port`` (port 0: any free port)."""

    def __init__(self, metrics: UplinkMetrics, host: str, port: int) -> None:
        self._metrics = metrics
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen."""
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            with contextlib.suppress(asyncio.TimeoutError):
                while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                    pass
            ok = line.split(b" ")[1:2] == [b"/metrics"]
            body = (self._metrics.render() if ok else "not found\n").encode()
            status = "200 OK" if ok else "404 Not Found"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
