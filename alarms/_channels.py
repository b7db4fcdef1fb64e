"""Channel adapters: SMTP e-mail, a generic webhook, 企业微信 and 钉钉 group robots.

Each adapter turns one :class:`~alarms._notify_format.Outgoing` into one network exchange and answers
with the far end's response text, or raises :class:`TemporaryDeliveryError` (try again later) or
:class:`PermanentDeliveryError` (fix something first). Texts and payloads come from
:mod:`alarms._notify_format`; retries, quiet hours and records are the dispatcher's job.

Secrets (SMTP password, robot URLs with their key or token, signing secrets) are redacted from every
error and response text an adapter produces, so nothing the dispatcher logs or stores can leak them. The
chat robots answer HTTP 200 even when they refuse a message; the refusal is in ``errcode`` ≠ 0.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final, Protocol
from urllib.parse import parse_qsl, urlsplit

import aiosmtplib
import httpx

from alarms._notify_config import (
    ChannelConfig,
    DingTalkChannelConfig,
    EmailChannelConfig,
    NotifyConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from alarms._notify_errors import PermanentDeliveryError, TemporaryDeliveryError
from alarms._notify_format import (
    Outgoing,
    dingtalk_payload,
    dingtalk_signed_url,
    email_subject,
    plain_text,
    webhook_payload,
    webhook_signature,
    wecom_payload,
)

logger = logging.getLogger(__name__)

RESPONSE_LIMIT: Final = 2000   # characters of a response or error kept in the attempt record
# Robot errcodes that mean "later" rather than "never": busy, or more than ~20 messages a minute.
_ROBOT_RETRYABLE: Final = frozenset({-1, 45009, 130101, 90030})
_RETRYABLE_HTTP: Final = frozenset({408, 425, 429})
USER_AGENT: Final = "ParkPulse-notify/1"


class Channel(Protocol):
    """Something that delivers one message: ``send`` returns the far end's answer or raises DeliveryError."""

    @property
    def name(self) -> str:
        """The channel's name in the config."""
        ...

    @property
    def kind(self) -> str:
        """``email``, ``webhook``, ``wecom`` or ``dingtalk``."""
        ...

    async def send(self, out: Outgoing) -> str:
        """Deliver ``out``; return the response text (redacted, truncated)."""
        ...


class Redactor:
    """Replaces every secret value (and a robot URL's ``key``/``access_token``) with ``***``."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            found.add(secret)
            for _, value in parse_qsl(urlsplit(secret).query):
                if len(value) >= 6:
                    found.add(value)
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with the secrets masked and cut to :data:`RESPONSE_LIMIT` characters."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text if len(text) <= RESPONSE_LIMIT else text[: RESPONSE_LIMIT - 1] + "…"


class EmailChannel:
    """SMTP with optional STARTTLS or implicit TLS and optional AUTH (aiosmtplib)."""

    kind = "email"

    def __init__(self, name: str, config: EmailChannelConfig) -> None:
        self.name = name
        self.config = config
        self._password = config.password.get_secret_value() if config.password else None
        self._redact = Redactor([self._password])

    def message(self, out: Outgoing) -> EmailMessage:
        """The e-mail: bilingual subject and body; a Message-ID stable across retries of one delivery."""
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = email_subject(out)
        msg["From"] = c.sender
        msg["To"] = ", ".join(c.to)
        msg["Date"] = format_datetime(out.notification.created_at)
        domain = c.sender.rpartition("@")[2] or "parkpulse.invalid"
        msg["Message-ID"] = f"<parkpulse.{out.notification_id}.{out.delivery_id}@{domain}>"
        msg["X-ParkPulse-Dedupe-Key"] = out.notification.dedupe_key
        msg.set_content(plain_text(out), charset="utf-8")
        return msg

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.security == "none":
            return None
        if self.config.ca_file is None:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cafile=str(self.config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise PermanentDeliveryError(self.name, f"cannot load ca_file {self.config.ca_file}: {exc}") from None

    async def send(self, out: Outgoing) -> str:
        """Send the message to every recipient; refused recipients are reported in the answer."""
        c = self.config
        try:
            refused, answer = await aiosmtplib.send(
                self.message(out), hostname=c.host, port=c.port, username=c.username, password=self._password,
                use_tls=c.security == "tls", start_tls=c.security == "starttls", tls_context=self._tls_context(),
                timeout=c.timeout_s)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            temporary = codes and all(400 <= code < 500 for code in codes)
            cls = TemporaryDeliveryError if temporary else PermanentDeliveryError
            raise cls(self.name, self._redact(f"all recipients refused: {exc}")) from None
        except aiosmtplib.SMTPResponseException as exc:
            cls = TemporaryDeliveryError if 400 <= exc.code < 500 else PermanentDeliveryError
            raise cls(self.name, self._redact(f"SMTP {exc.code} {exc.message}"),
                      response=self._redact(f"{exc.code} {exc.message}")) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise PermanentDeliveryError(self.name, self._redact(f"server does not support it: {exc.message}; "
                                                                 "check security and port")) from None
        except ssl.SSLError as exc:
            raise PermanentDeliveryError(self.name, self._redact(f"TLS failed ({exc}); check security, port "
                                                                 "and ca_file")) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # connect, timeout, disconnect
            raise TemporaryDeliveryError(self.name, self._redact(f"{exc.__class__.__name__}: {exc}")) from None
        note = f"; refused: {', '.join(sorted(refused))}" if refused else ""
        return self._redact(f"{answer}{note}")


class _HttpChannel:
    """Shared POST-and-classify logic of the webhook and the two robots."""

    kind = "webhook"

    def __init__(self, name: str, client: httpx.AsyncClient, url: str, timeout_s: float,
                 secrets: Iterable[str | None]) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._timeout_s = timeout_s
        self._redact = Redactor([url, *secrets])

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = await self._client.post(url, content=body, timeout=self._timeout_s,
                                               headers={"Content-Type": "application/json; charset=utf-8",
                                                        "User-Agent": USER_AGENT, **headers})
        except httpx.TimeoutException:
            raise TemporaryDeliveryError(self.name, f"no answer within {self._timeout_s:g} s") from None
        except httpx.InvalidURL:
            raise PermanentDeliveryError(self.name, "the URL is not valid; check the channel's url") from None
        except httpx.HTTPError as exc:  # connection refused, DNS, TLS, protocol errors
            raise TemporaryDeliveryError(self.name, self._redact(f"{exc.__class__.__name__}: {exc}")) from None
        text = self._redact(f"HTTP {response.status_code} {response.text}".strip())
        if response.status_code >= 500 or response.status_code in _RETRYABLE_HTTP:
            raise TemporaryDeliveryError(self.name, text, response=text)
        if response.status_code >= 300:
            raise PermanentDeliveryError(self.name, f"{text}; check the URL and credentials", response=text)
        return response

    def _robot_answer(self, response: httpx.Response) -> str:
        text = self._redact(response.text)
        try:
            answer = json.loads(response.text)
        except ValueError:
            raise TemporaryDeliveryError(self.name, f"not a robot answer: {text}", response=text) from None
        code = answer.get("errcode") if isinstance(answer, dict) else None
        if code == 0:
            return text
        if not isinstance(code, int):
            raise TemporaryDeliveryError(self.name, f"robot answer has no errcode: {text}", response=text)
        cls = TemporaryDeliveryError if code in _ROBOT_RETRYABLE else PermanentDeliveryError
        raise cls(self.name, f"robot refused the message (errcode {code}): {text}", response=text)


class WebhookChannel(_HttpChannel):
    """JSON POST of :func:`~alarms._notify_format.webhook_payload`, optionally HMAC-signed."""

    kind = "webhook"

    def __init__(self, name: str, config: WebhookChannelConfig, client: httpx.AsyncClient,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._signing = config.signing_secret.get_secret_value() if config.signing_secret else None
        super().__init__(name, client, config.url.get_secret_value(), config.timeout_s, [self._signing])
        self._headers = dict(config.headers)
        self._wall_clock = wall_clock

    async def send(self, out: Outgoing) -> str:
        """POST the document; any 2xx is success."""
        body = json.dumps(webhook_payload(out), ensure_ascii=False).encode("utf-8")
        headers = {**self._headers, "X-ParkPulse-Delivery": str(out.delivery_id),
                   "X-ParkPulse-Attempt": str(out.attempt)}
        if self._signing is not None:
            stamp = int(self._wall_clock())
            headers["X-ParkPulse-Timestamp"] = str(stamp)
            headers["X-ParkPulse-Signature"] = webhook_signature(self._signing, stamp, body)
        response = await self._post(self._url, body, headers)
        return self._redact(f"HTTP {response.status_code} {response.text}".strip())


class WeComChannel(_HttpChannel):
    """企业微信 group robot: markdown (default) or text."""

    kind = "wecom"

    def __init__(self, name: str, config: WeComChannelConfig, client: httpx.AsyncClient) -> None:
        super().__init__(name, client, config.url.get_secret_value(), config.timeout_s, [])
        self._msgtype = config.msgtype

    async def send(self, out: Outgoing) -> str:
        """POST the robot message; ``errcode`` ≠ 0 is a failure."""
        body = json.dumps(wecom_payload(out, self._msgtype), ensure_ascii=False).encode("utf-8")
        return self._robot_answer(await self._post(self._url, body, {}))


class DingTalkChannel(_HttpChannel):
    """钉钉 custom robot: markdown (default) or text, signed (加签) when a secret is configured."""

    kind = "dingtalk"

    def __init__(self, name: str, config: DingTalkChannelConfig, client: httpx.AsyncClient,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._secret = config.secret.get_secret_value() if config.secret else None
        super().__init__(name, client, config.url.get_secret_value(), config.timeout_s, [self._secret])
        self._msgtype = config.msgtype
        self._wall_clock = wall_clock

    async def send(self, out: Outgoing) -> str:
        """POST the robot message to a freshly signed URL (the signature is valid for one hour)."""
        url = self._url
        if self._secret is not None:
            url = dingtalk_signed_url(url, self._secret, round(self._wall_clock() * 1000))
        body = json.dumps(dingtalk_payload(out, self._msgtype), ensure_ascii=False).encode("utf-8")
        return self._robot_answer(await self._post(url, body, {}))


def build_channel(name: str, config: ChannelConfig, client: httpx.AsyncClient,
                  wall_clock: Callable[[], float] = time.time) -> Channel:
    """The adapter for one configured channel."""
    match config:
        case EmailChannelConfig():
            return EmailChannel(name, config)
        case WebhookChannelConfig():
            return WebhookChannel(name, config, client, wall_clock)
        case WeComChannelConfig():
            return WeComChannel(name, config, client)
        case DingTalkChannelConfig():
            return DingTalkChannel(name, config, client, wall_clock)


@asynccontextmanager
async def open_channels(config: NotifyConfig, *, wall_clock: Callable[[], float] = time.time,
                        ) -> AsyncIterator[dict[str, Channel]]:
    """Every configured channel, sharing one HTTP client that is closed on exit."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield {name: build_channel(name, cfg, client, wall_clock) for name, cfg in config.channels.items()}

