"""Platform endpoints: where each park's records go (YAML file, ``PARKPULSE_UPLINK_ENDPOINTS_FILE``).

::

    endpoints:
      - name: city                    # [a-z0-9_-]; the queue's name
        profile: national-json        # schemas/uplink_profiles/<profile>/ (items.yaml + wire.yaml)
        park: park-a
        enterprise_code: "91440300MA5XXXXXXX"
        base_url: https://platform.example:8443
        auth: {kind: token, client_id: pp, secret_file: /etc/parkpulse/city.secret}
        # or  {kind: client_cert, cert_file: client.pem, key_file: client.key}
        ca_file: /etc/parkpulse/platform-ca.pem   # verify the platform against this CA (default: system CAs)
        batch_size: 100
        realtime_interval_min: 15     # 15 | 60 (60: hourly real-time records instead of 15-minute ones)
        unit: {name: 某某有限公司, industry_code: C3130, region_code: "440300", address: …,
               contact_name: …, contact_phone: …}

One park may have several endpoints (city and province data centres): each has its own queue.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.uplink_record import Period
from uplink.errors import EndpointConfigError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class EndpointAuth(BaseModel):
    """How the endpoint authenticates ParkPulse: a token exchange, a client certificate, or nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["token", "client_cert", "none"] = "none"
    client_id: str | None = None
    secret: str | None = None
    secret_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> EndpointAuth:
        if self.kind == "token" and (not self.client_id or (self.secret is None and self.secret_file is None)):
            raise ValueError("token auth needs client_id and secret or secret_file")
        if self.kind == "client_cert" and self.cert_file is None:
            raise ValueError("client_cert auth needs cert_file (and key_file unless the key is in it)")
        return self

    def read_secret(self) -> str:
        """The token secret (from ``secret_file`` when given)."""
        if self.secret_file is not None:
            try:
                return self.secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise EndpointConfigError(f"cannot read secret_file {self.secret_file}: {exc.strerror}") from None
        return self.secret or ""


class EndpointConfig(BaseModel):
    """One receiving data centre of one park."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    profile: str
    park: str
    enterprise_code: str
    base_url: str
    auth: EndpointAuth = EndpointAuth()
    ca_file: Path | None = None
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 100
    realtime_interval_min: int = 15
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    unit: dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use [a-z0-9][a-z0-9_-]{0,63}")
        return value

    @field_validator("realtime_interval_min")
    @classmethod
    def _realtime(cls, value: int) -> int:
        if value not in (15, 60):
            raise ValueError(f"{value} minutes is not a real-time period of the specification (15 minutes, relaxable "
                             "to 60): use 15, or 60 for hourly records")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (http:// only for local tests)")
        return value.rstrip("/")

    @property
    def periods(self) -> tuple[Period, ...]:
        """The record periods this endpoint receives (real-time: 15 min, or hourly at a 60-minute interval)."""
        realtime: Period = "hour" if self.realtime_interval_min == 60 else "15min"
        return (realtime, "day", "month") if realtime == "hour" else ("15min", "hour", "day", "month")


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[EndpointConfig]

    @model_validator(mode="after")
    def _unique(self) -> _File:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique: {names}")
        return self


def parse_endpoints(text: str, *, path: str = "endpoints.yaml") -> list[EndpointConfig]:
    """Validate an endpoints file's text; relative file paths are relative to the file's folder."""
    try:
        data = yaml.safe_load(text)
        parsed = _File.model_validate(data if data is not None else {"endpoints": []})
    except yaml.YAMLError as exc:
        raise EndpointConfigError(f"{path}: not YAML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise EndpointConfigError(f"{path}: {where}: {err['msg']}") from None
    base = Path(path).parent
    return [_absolute(e, base) for e in parsed.endpoints]


def _absolute(ep: EndpointConfig, base: Path) -> EndpointConfig:
    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    auth = ep.auth.model_copy(update={k: fix(getattr(ep.auth, k)) for k in ("secret_file", "cert_file", "key_file")
                                      if fix(getattr(ep.auth, k)) is not None})
    update: dict[str, object] = {"auth": auth}
    if fix(ep.ca_file) is not None:
        update["ca_file"] = fix(ep.ca_file)
    return ep.model_copy(update=update)


def load_endpoints(path: Path | None) -> list[EndpointConfig]:
    """The endpoints of ``path``; raises :class:`EndpointConfigError` saying how to configure them."""
    if path is None:
        raise EndpointConfigError("no endpoints configured: set PARKPULSE_UPLINK_ENDPOINTS_FILE to a YAML file "
                                  "(deploy/uplink/endpoints.example.yaml shows the format) or pass --endpoints FILE")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EndpointConfigError(f"cannot read endpoints file {path}: {exc.strerror}") from None
    return parse_endpoints(text, path=str(path))
