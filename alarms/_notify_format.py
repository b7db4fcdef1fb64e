"""Message texts and payloads per channel, Chinese first, then English (pure functions, no I/O).

* e-mail: a bilingual subject and plain-text body;
* generic webhook: one JSON document with both languages side by side, and an optional HMAC-SHA256
  signature over ``timestamp + "." + body`` (``X-ParkPulse-Signature: sha256=<hex>``);
* 企业微信 group robot: ``{"msgtype": "markdown", "markdown": {"content": …}}`` (or ``text``), content
  kept under the robot's 4096-byte limit;
* 钉钉 custom robot: ``{"msgtype": "markdown", "markdown": {"title": …, "text": …}}`` (or ``text``); when
  the robot is set to 加签, the URL carries ``timestamp`` (ms) and ``sign`` = URL-encoded
  base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)).

Times are shown in the park's time zone; the JSON payload also carries them in UTC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote_plus, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from alarms._notification import Notification, Severity

ROBOT_LIMIT_BYTES: Final = 4096   # 企业微信 markdown content limit; used for 钉钉 too, to stay well inside it
SEVERITY_LABELS: Final[dict[Severity, tuple[str, str]]] = {
    "info": ("提示", "Info"),
    "warning": ("警告", "Warning"),
    "critical": ("严重", "Critical"),
}
_WECOM_COLOUR: Final[dict[Severity, str]] = {"info": "comment", "warning": "warning", "critical": "warning"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification on its way to one channel, with what the texts need to say about the delivery."""

    notification: Notification
    notification_id: int
    delivery_id: int
    attempt: int
    timezone: str
    escalated_after_minutes: int | None = None   # set on the escalation stage


def local_time_text(at: datetime, timezone: str) -> str:
    """``2026-03-01 08:15`` in the park's time zone, with the zone name."""
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} ({timezone})"


def _labels(out: Outgoing) -> tuple[str, str]:
    zh, en = SEVERITY_LABELS[out.notification.severity]
    if out.escalated_after_minutes is not None:
        return f"升级·{zh}", f"Escalated · {en}"
    return zh, en


def _escalation_lines(out: Outgoing) -> tuple[str, str] | None:
    if out.escalated_after_minutes is None:
        return None
    m = out.escalated_after_minutes
    return (f"该告警已 {m} 分钟未确认,现升级通知。", f"This alarm was not acknowledged within {m} minutes.")


def email_subject(out: Outgoing) -> str:
    """``[严重 Critical] 标题 / Title`` (one line)."""
    zh, en = _labels(out)
    n = out.notification
    return " ".join(f"[{zh} {en}] {n.title_zh} / {n.title_en}".split())


def plain_text(out: Outgoing) -> str:
    """The bilingual plain-text body (e-mail, robot ``text`` messages)."""
    n = out.notification
    zh, en = _labels(out)
    when = local_time_text(n.created_at, out.timezone)
    esc = _escalation_lines(out)
    lines = [f"【{zh}】{n.title_zh}", *([esc[0]] if esc else []), n.body_zh, f"园区:{n.park_id}  时间:{when}", "",
             f"[{en}] {n.title_en}", *([esc[1]] if esc else []), n.body_en, f"Park: {n.park_id}  Time: {when}"]
    if n.links:
        lines += ["", *(f"{label}: {url}" for label, url in n.links.items())]
    return "\n".join(lines)


def markdown_text(out: Outgoing, *, wecom: bool) -> str:
    """The bilingual markdown body for the chat robots (企业微信 colours the severity)."""
    n = out.notification
    zh, en = _labels(out)
    when = local_time_text(n.created_at, out.timezone)
    esc = _escalation_lines(out)
    badge = f'<font color="{_WECOM_COLOUR[n.severity]}">【{zh}】</font>' if wecom else f"【{zh}】"
    parts = [f"### {badge}{n.title_zh}", *([f"> {esc[0]}"] if esc else []), n.body_zh,
             f"> 园区:{n.park_id}  时间:{when}", "",
             f"**[{en}] {n.title_en}**", *([f"> {esc[1]}"] if esc else []), n.body_en,
             f"> Park: {n.park_id}  Time: {when}"]
    if n.links:
        parts += ["", *(f"[{label}]({url})" for label, url in n.links.items())]
    return "\n".join(parts)


def truncate_utf8(text: str, limit_bytes: int) -> str:
    """``text`` cut to at most ``limit_bytes`` UTF-8 bytes at a character boundary, marked with ``…``."""
    data = text.encode("utf-8")
    if len(data) <= limit_bytes:
        return text
    marker = "…"
    cut = data[: max(0, limit_bytes - len(marker.encode("utf-8")))].decode("utf-8", errors="ignore")
    return cut + marker


def wecom_payload(out: Outgoing, msgtype: str) -> dict[str, Any]:
    """The JSON body for a 企业微信 group robot."""
    if msgtype == "text":
        return {"msgtype": "text", "text": {"content": truncate_utf8(plain_text(out), ROBOT_LIMIT_BYTES // 2)}}
    return {"msgtype": "markdown",
            "markdown": {"content": truncate_utf8(markdown_text(out, wecom=True), ROBOT_LIMIT_BYTES)}}


def dingtalk_payload(out: Outgoing, msgtype: str) -> dict[str, Any]:
    """The JSON body for a 钉钉 custom robot (``title`` is what the chat list previews)."""
    if msgtype == "text":
        return {"msgtype": "text", "text": {"content": truncate_utf8(plain_text(out), ROBOT_LIMIT_BYTES)}}
    zh, _ = _labels(out)
    return {"msgtype": "markdown",
            "markdown": {"title": truncate_utf8(f"【{zh}】{out.notification.title_zh}", 256),
                         "text": truncate_utf8(markdown_text(out, wecom=False), ROBOT_LIMIT_BYTES)}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")), before URL encoding."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot URL with ``timestamp`` and URL-encoded ``sign`` appended to its query."""
    parts = urlsplit(url)
    extra = f"timestamp={timestamp_ms}&sign={quote_plus(dingtalk_sign(secret, timestamp_ms))}"
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def webhook_payload(out: Outgoing) -> dict[str, Any]:
    """The generic webhook's JSON document: both languages, ids to deduplicate retries, UTC and local time."""
    n = out.notification
    return {
        "park_id": n.park_id,
        "notification_id": out.notification_id,
        "delivery_id": out.delivery_id,
        "attempt": out.attempt,
        "dedupe_key": n.dedupe_key,
        "severity": n.severity,
        "alarm_id": n.alarm_id,
        "escalated_after_minutes": out.escalated_after_minutes,
        "created_at": n.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "created_at_local": n.created_at.astimezone(ZoneInfo(out.timezone)).isoformat(),
        "timezone": out.timezone,
        "title": {"zh": n.title_zh, "en": n.title_en},
        "body": {"zh": n.body_zh, "en": n.body_en},
        "links": dict(n.links),
    }


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(key=secret, msg=f"{timestamp_s}." + body) (receivers recompute it)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"
