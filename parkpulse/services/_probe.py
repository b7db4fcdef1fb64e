"""Checks that a broker or a database really answers, not just that a port is open."""

from __future__ import annotations

import logging
import os
import socket
import struct
from urllib.parse import unquote, urlsplit

import psycopg

from parkpulse.services._errors import ServicesError

__all__ = ["mqtt_address", "mqtt_ping", "port_open", "postgres_ping"]

logger = logging.getLogger(__name__)

_MQTT_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mqtt_address(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of an ``mqtt://`` URL (default port by scheme)."""
    parts = urlsplit(url)
    if parts.scheme not in _MQTT_DEFAULT_PORTS or not parts.hostname:
        raise ServicesError(f"not an MQTT URL: {url!r} (expected mqtt://host:port)")
    return parts.hostname, parts.port or _MQTT_DEFAULT_PORTS[parts.scheme]


def _utf8(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def _connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """Build an MQTT 3.1.1 CONNECT packet (clean session, 10 s keep-alive)."""
    flags = 0x02
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    body = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 10) + payload
    length, encoded = len(body), b""
    while True:
        length, digit = divmod(length, 128)
        encoded += bytes([digit | (0x80 if length else 0)])
        if not length:
            return b"\x10" + encoded + body


def mqtt_ping(url: str, timeout: float = 3.0) -> None:
    """Connect to the broker at ``url`` with a raw MQTT CONNECT and check that it is accepted.

    Raises :class:`ServicesError` if nothing listens or the broker refuses. TLS URLs are only checked
    for an open port, which keeps this probe free of certificate configuration.
    """
    host, port = mqtt_address(url)
    parts = urlsplit(url)
    if parts.scheme in ("mqtts", "ssl"):
        if not port_open(host, port, timeout):
            raise ServicesError(f"nothing accepts connections at {host}:{port} ({url})")
        return
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    packet = _connect_packet(f"parkpulse-probe-{os.getpid()}", username, password)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    break
                reply += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError as exc:
        raise ServicesError(f"MQTT broker at {host}:{port} does not answer: {exc}") from exc
    if len(reply) < 4 or reply[0] != 0x20:
        raise ServicesError(f"{host}:{port} did not answer MQTT CONNECT with a CONNACK (got {reply!r})")
    if reply[3] != 0:
        raise ServicesError(f"MQTT broker at {host}:{port} refused the connection (return code {reply[3]})")


def postgres_ping(url: str, timeout: float = 5.0) -> str | None:
    """Connect to the database at ``url`` and return the installed TimescaleDB version (None if absent).

    Raises :class:`ServicesError` when the server cannot be reached or refuses the login.
    """
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
    except psycopg.Error as exc:
        raise ServicesError(f"database does not answer: {str(exc).strip()}") from exc
    return str(row[0]) if row else None
