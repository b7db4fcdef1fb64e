"""Local stand-ins for the far ends of notification channels, shared by the notify and channel tests.

* :func:`http_server`: a threaded HTTP server standing in for a webhook receiver or a chat robot. It
  records every request (path, raw query, headers, body) and answers from a script, then with a default.
* :func:`smtp_server`: a real aiosmtpd SMTP server (optionally STARTTLS + AUTH) collecting messages.
* :func:`notification`: a Notification with test defaults.

No tests live here; the module name only matches the notify tests' files.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alarms._notification import Notification


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def notification(park_id: str, key: str = "alarm:1:raised", *, severity: str = "warning",
                 created_at: datetime | None = None, alarm_id: int | None = None) -> Notification:
    """A bilingual test notification."""
    return Notification(
        park_id=park_id, dedupe_key=key, severity=severity,  # type: ignore[arg-type]
        title_zh="电表离线：M-101", title_en="Meter offline: M-101",
        body_zh="电表 M-101 已 45 分钟无读数。", body_en="Meter M-101 sent no reading for 45 minutes.",
        created_at=created_at or datetime(2026, 3, 2, 1, 0, tzinfo=UTC), alarm_id=alarm_id,
        links={"API": f"/v1/parks/{park_id}/alarms/{alarm_id or 1}"})


# ----------------------------------------------------------------------------------------------- HTTP
@dataclass
class Recorded:
    """One request the stand-in server received."""

    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpStandIn:
    """The running server: ``url``, what it received, and the answers still scripted."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, str]] = field(default_factory=list)
    default: tuple[int, str] = (200, '{"errcode":0,"errmsg":"ok"}')
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_server(path: str = "/hook", query: str = "") -> Iterator[HttpStandIn]:
    """A local HTTP server answering POSTs; ``url`` includes ``path`` and ``query``."""
    port = free_port()
    stand_in = HttpStandIn(f"http://127.0.0.1:{port}{path}" + (f"?{query}" if query else ""))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            with stand_in.lock:
                stand_in.requests.append(Recorded(parts.path, parts.query, dict(self.headers.items()), body))
                status, text = stand_in.script.pop(0) if stand_in.script else stand_in.default
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="notify-http-stand-in", daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------------------- SMTP
class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


@dataclass
class SmtpStandIn:
    """The running SMTP server: where it listens and what it received."""

    port: int
    handler: _Collect
    logins: list[str]

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.handler.messages


@contextmanager
def smtp_server(*, tls_cert: tuple[Path, Path] | None = None,
                credentials: tuple[str, str] | None = None) -> Iterator[SmtpStandIn]:
    """A real aiosmtpd server on loopback; with ``tls_cert`` it offers STARTTLS (required), and with
    ``credentials`` it requires AUTH with exactly that user name and password."""
    handler = _Collect()
    logins: list[str] = []
    kwargs: dict[str, Any] = {}
    if tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    if credentials is not None:
        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and \
                (auth_data.login.decode(), auth_data.password.decode()) == credentials
            if ok:
                logins.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself
        kwargs.update(authenticator=authenticator, auth_required=True)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpStandIn(port, handler, logins)
    finally:
        controller.stop()
