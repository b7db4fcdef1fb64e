"""The notify config: channels, recipient lists with quiet hours, routes per park and severity, retry policy.

A YAML file (example: ``alarms/data/notify.example.yaml``)::

    channels:              # where messages can go; secrets are {env: NAME} or {file: PATH}, never inline
      ops-mail: {kind: email, host: smtp.example.com, port: 587, security: starttls, sender: …, to: [...]}
      ops-wecom: {kind: wecom, url: {env: PARKPULSE_WECOM_URL}}
    lists:                 # who is told together; quiet hours are in each park's own time zone
      operators: {channels: [ops-mail, ops-wecom], quiet_hours: {start: "22:00", end: "07:00"}}
    routes:                # per park id, "*" for every other park
      "*": {warning: [operators], critical: [operators], escalation: {after_minutes: 30, to: [duty]}}
    retry: {max_attempts: 8, initial_delay_s: 30, max_delay_s: 1800}

Secrets are resolved once, at load, from the environment mapping the entry point passes in and from files
(relative paths from the config file's folder); they are held as :class:`pydantic.SecretStr`, so they never
show up in a repr, a log line or an error message. Every problem is a :class:`NotifyConfigError` naming the
field and what to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alarms._notification import Severity
from alarms._notify_errors import NotifyConfigError

DEFAULT_ROUTE = "*"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_ERRORS_SHOWN = 8


def _resolve_secret(value: object, info: ValidationInfo) -> object:
    """Turn ``{env: NAME}`` / ``{file: PATH}`` into the secret's text; plain strings pass through."""
    if not isinstance(value, dict):
        return value
    context = info.context if isinstance(info.context, dict) else {}
    if set(value) == {"env"} and isinstance(value["env"], str):
        environ: Mapping[str, str] = context.get("environ", {})
        name = value["env"]
        if not environ.get(name):
            raise ValueError(f"environment variable {name} is not set or empty; set it in the notifier's "
                             "environment (e.g. its systemd unit or container env) or use {file: PATH}")
        return environ[name]
    if set(value) == {"file"} and isinstance(value["file"], str):
        base: Path = context.get("base_dir", Path())
        path = base / Path(value["file"])
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read secret file {path} ({exc.__class__.__name__}); check the path and "
                             "that the notifier's user may read it") from None
        if not text:
            raise ValueError(f"secret file {path} is empty; write the secret into it")
        return text
    raise ValueError("a secret is a string, {env: VARIABLE} or {file: PATH}")


def _http_url(value: SecretStr) -> SecretStr:
    """Refuse anything but an absolute http(s) URL (without echoing it: it may hold a key)."""
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL (value not shown: it may hold a key)")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]
SecretUrl = Annotated[SecretStr, BeforeValidator(_resolve_secret), AfterValidator(_http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailChannelConfig(_Model):
    """SMTP e-mail; ``security``: ``none``, ``starttls`` (upgrade on port 587) or ``tls`` (implicit, port 465)."""

    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: Secret | None = None
    ca_file: Path | None = None       # a private CA for the relay's certificate (default: system store)
    sender: str = Field(min_length=3, pattern=r"@")
    to: list[Annotated[str, Field(min_length=3, pattern=r"@")]] = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _auth_pair(self) -> EmailChannelConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password for SMTP AUTH, or neither")
        return self


class WebhookChannelConfig(_Model):
    """A JSON POST to any URL; with ``signing_secret`` the body is HMAC-SHA256 signed (``X-ParkPulse-Signature``)."""

    kind: Literal["webhook"]
    url: SecretUrl
    signing_secret: Secret | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class WeComChannelConfig(_Model):
    """A 企业微信 group robot (webhook URL with ``key=``); the URL is the secret."""

    kind: Literal["wecom"]
    url: SecretUrl
    msgtype: Literal["markdown", "text"] = "markdown"
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class DingTalkChannelConfig(_Model):
    """A 钉钉 custom robot (URL with ``access_token=``); ``secret`` (SEC…) when the robot is set to 加签."""

    kind: Literal["dingtalk"]
    url: SecretUrl
    secret: Secret | None = None
    msgtype: Literal["markdown", "text"] = "markdown"
    timeout_s: float = Field(default=10.0, gt=0, le=120)


ChannelConfig = Annotated[
    EmailChannelConfig | WebhookChannelConfig | WeComChannelConfig | DingTalkChannelConfig,
    Field(discriminator="kind"),
]


class QuietHours(_Model):
    """Local times (park time zone) between which messages wait; ``end`` before ``start`` spans midnight."""

    start: time
    end: time
    critical_overrides: bool = True   # critical messages go out even during quiet hours

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(  # noqa: TRY004 - pydantic reports only ValueError as a validation error
                'write times in quotes, e.g. "22:00" (YAML reads 22:00 unquoted as a number)')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are equal; remove quiet_hours or give a real span")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local times of each park; drop the UTC offset")
        return self


class RecipientList(_Model):
    """Channels told together, with their quiet hours."""

    channels: list[str] = Field(min_length=1)
    quiet_hours: QuietHours | None = None


class Escalation(_Model):
    """Where an unacknowledged critical alarm goes after ``after_minutes``."""

    after_minutes: int = Field(ge=1, le=7 * 24 * 60)
    to: list[str] = Field(min_length=1)


class Route(_Model):
    """The lists told for each severity of one park's messages."""

    info: list[str] = Field(default_factory=list)
    warning: list[str] = Field(default_factory=list)
    critical: list[str] = Field(default_factory=list)
    escalation: Escalation | None = None

    def lists_for(self, severity: Severity) -> list[str]:
        """The recipient lists of ``severity``."""
        return {"info": self.info, "warning": self.warning, "critical": self.critical}[severity]


class RetryPolicy(_Model):
    """Attempts per delivery and the backoff between them (doubling, jittered, capped)."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    initial_delay_s: float = Field(default=30.0, gt=0, le=86_400)
    max_delay_s: float = Field(default=1800.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_delay_s < self.initial_delay_s:
            raise ValueError("max_delay_s must be at least initial_delay_s")
        return self


class NotifyConfig(_Model):
    """The whole notify config, cross-checked: every list names known channels, every route known lists."""

    channels: dict[str, ChannelConfig] = Field(min_length=1)
    lists: dict[str, RecipientList] = Field(min_length=1)
    routes: dict[str, Route] = Field(min_length=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        for section, names in (("channels", self.channels), ("lists", self.lists)):
            for name in names:
                if not _NAME.match(name):
                    raise ValueError(f"{section} name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        for name, rlist in self.lists.items():
            unknown = [c for c in rlist.channels if c not in self.channels]
            if unknown:
                raise ValueError(f"lists.{name}.channels names unknown channel(s) {unknown}; "
                                 f"define them under channels (known: {sorted(self.channels)})")
        for park, route in self.routes.items():
            used = [*route.info, *route.warning, *route.critical, *(route.escalation.to if route.escalation else [])]
            unknown = [n for n in used if n not in self.lists]
            if unknown:
                raise ValueError(f"routes.{park} names unknown list(s) {unknown}; "
                                 f"define them under lists (known: {sorted(self.lists)})")
        return self

    def route_for(self, park_id: str) -> Route | None:
        """The park's own route, else the ``"*"`` route, else None (its messages go nowhere)."""
        return self.routes.get(park_id) or self.routes.get(DEFAULT_ROUTE)


def _where(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 2 and parts[0] == "channels" and parts[2] in ("email", "webhook", "wecom", "dingtalk"):
        del parts[2]  # the discriminator tag pydantic inserts: channels.ops.email.port -> channels.ops.port
    return ".".join(parts) or "(top level)"


def parse_notify_config(text: str, *, source: str, environ: Mapping[str, str], base_dir: Path) -> NotifyConfig:
    """Parse and validate config ``text`` (``source`` names it in errors); secrets come from ``environ``/files."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise NotifyConfigError(f"notify config {source} is not valid YAML{where}: "
                                f"{getattr(exc, 'problem', None) or exc.__class__.__name__}; fix the syntax") from None
    if not isinstance(data, dict):
        raise NotifyConfigError(f"notify config {source} must be a mapping with channels, lists and routes "
                                "(see alarms/data/notify.example.yaml)")
    try:
        return NotifyConfig.model_validate(data, context={"environ": environ, "base_dir": base_dir})
    except ValidationError as exc:
        problems = [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False, include_input=False)]
        more = len(problems) - _MAX_ERRORS_SHOWN
        shown = "; ".join(problems[:_MAX_ERRORS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        raise NotifyConfigError(f"notify config {source} is invalid: {shown}") from None


def load_notify_config(path: Path, environ: Mapping[str, str]) -> NotifyConfig:
    """Read and validate the YAML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotifyConfigError(f"cannot read notify config {path} ({exc.__class__.__name__}: {exc}); "
                                "check --config / PARKPULSE_NOTIFY_CONFIG_FILE") from None
    return parse_notify_config(text, source=str(path), environ=environ, base_dir=path.parent)
