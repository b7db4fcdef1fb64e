"""Channel adapters against local stand-ins: a real aiosmtpd server, and HTTP servers for the robots.

Expectations are computed here, independently of the code: the 钉钉 signature from the received timestamp
and the secret with hmac/hashlib, the webhook signature likewise, byte limits with ``len(...encode())``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote_plus

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from alarms._channels import DingTalkChannel, EmailChannel, WebhookChannel, WeComChannel
from alarms._notify_config import (
    DingTalkChannelConfig,
    EmailChannelConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from alarms._notify_errors import PermanentDeliveryError, TemporaryDeliveryError
from alarms._notify_format import Outgoing, truncate_utf8
from tests.alarms.test_notify_support import free_port, http_server, notification, smtp_server
from tests.fixtures.deploy_broker import make_pki

WALL = 1_767_225_600.123  # a fixed wall clock for the signed requests (2026-01-01T00:00:00.123Z)


def _out(severity: str = "critical", *, escalated: int | None = None, body: str | None = None) -> Outgoing:
    n = notification("park-a", severity=severity, alarm_id=7,
                     created_at=datetime(2026, 3, 2, 1, 5, tzinfo=UTC))  # 09:05 in Shanghai
    if body is not None:
        n = replace(n, body_zh=body, body_en=body)
    return Outgoing(n, notification_id=11, delivery_id=22, attempt=1, timezone="Asia/Shanghai",
                    escalated_after_minutes=escalated)


# ----------------------------------------------------------------------------------------------- SMTP
async def test_email_reaches_a_real_smtp_server_with_both_languages() -> None:
    with smtp_server() as server:
        cfg = EmailChannelConfig(kind="email", host="127.0.0.1", port=server.port, sender="pp@park.example",
                                 to=["a@park.example", "b@park.example"])
        answer = await EmailChannel("mail", cfg).send(_out())
    assert "accepted" in answer
    assert len(server.messages) == 1
    mail_from, rcpt, msg = server.messages[0]
    assert mail_from == "pp@park.example"
    assert rcpt == ["a@park.example", "b@park.example"]
    assert msg["Subject"] == "[严重 Critical] 电表离线：M-101 / Meter offline: M-101"
    assert msg["Message-ID"] == "<parkpulse.11.22@park.example>"
    body = msg.get_content()
    assert body.index("电表 M-101 已 45 分钟无读数。") < body.index("Meter M-101 sent no reading for 45 minutes.")
    assert "2026-03-02 09:05 (Asia/Shanghai)" in body  # 01:05 UTC shown in the park's time zone


async def test_email_uses_starttls_and_auth_and_never_leaks_the_password(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with smtp_server(tls_cert=(pki.server_cert, pki.server_key), credentials=("pp", "s3cret-pw")) as server:
        good = EmailChannelConfig(kind="email", host="127.0.0.1", port=server.port, security="starttls",
                                  ca_file=pki.ca, username="pp", password="s3cret-pw",  # type: ignore[arg-type]
                                  sender="pp@park.example", to=["ops@park.example"])
        await EmailChannel("mail", good).send(_out("warning"))
        assert server.logins == ["pp"]
        assert len(server.messages) == 1
        bad = good.model_copy(update={"password": SecretStr("wrong-pw-123")})
        with pytest.raises(PermanentDeliveryError) as info:
            await EmailChannel("mail", bad).send(_out("warning"))
        assert "535" in str(info.value)
        assert "wrong-pw-123" not in str(info.value)
        untrusted = good.model_copy(update={"ca_file": pki.other_ca})
        with pytest.raises((PermanentDeliveryError, TemporaryDeliveryError)) as info2:
            await EmailChannel("mail", untrusted).send(_out("warning"))
        assert "s3cret-pw" not in str(info2.value)
    assert len(server.messages) == 1


async def test_email_to_a_closed_port_is_worth_retrying() -> None:
    cfg = EmailChannelConfig(kind="email", host="127.0.0.1", port=free_port(), sender="pp@park.example",
                             to=["a@park.example"], timeout_s=5)
    with pytest.raises(TemporaryDeliveryError):
        await EmailChannel("mail", cfg).send(_out())


# ----------------------------------------------------------------------------------------------- robots
async def test_wecom_markdown_payload_and_errcode_handling() -> None:
    key = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    with http_server("/cgi-bin/webhook/send", f"key={key}") as robot:
        cfg = WeComChannelConfig(kind="wecom", url=robot.url)  # type: ignore[arg-type]
        async with httpx.AsyncClient() as client:
            channel = WeComChannel("wecom", cfg, client)
            assert '"errcode":0' in await channel.send(_out(escalated=30))
            robot.script += [(200, '{"errcode":45009,"errmsg":"api freq out of limit"}'),
                             (200, '{"errcode":93000,"errmsg":"invalid webhook url"}'),
                             (502, "bad gateway")]
            with pytest.raises(TemporaryDeliveryError):
                await channel.send(_out())
            with pytest.raises(PermanentDeliveryError) as info:
                await channel.send(_out())
            assert "93000" in str(info.value)
            with pytest.raises(TemporaryDeliveryError):
                await channel.send(_out())
            with pytest.raises(TemporaryDeliveryError) as refused:   # server gone: the key must not leak
                await WeComChannel("wecom", WeComChannelConfig(
                    kind="wecom", url=f"http://127.0.0.1:{free_port()}/send?key={key}"),  # type: ignore[arg-type]
                    client).send(_out())
            assert key not in str(refused.value)
    first = robot.requests[0]
    assert first.query == f"key={key}"
    assert first.headers["Content-Type"].startswith("application/json")
    doc = first.json()
    assert doc["msgtype"] == "markdown"
    content = doc["markdown"]["content"]
    assert content.index("电表离线：M-101") < content.index("Meter offline: M-101")
    assert '<font color="warning">' in content
    assert "30 分钟未确认" in content
    assert "not acknowledged within 30 minutes" in content


async def test_wecom_content_stays_within_4096_bytes() -> None:
    with http_server("/send", "key=k-123456") as robot:
        async with httpx.AsyncClient() as client:
            await WeComChannel("wecom", WeComChannelConfig(kind="wecom", url=robot.url),  # type: ignore[arg-type]
                               client).send(_out(body="超长正文" * 2000))
    content = robot.requests[0].json()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.endswith("…")


async def test_dingtalk_signature_matches_an_independent_computation() -> None:
    secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
    token = "tok-9f8e7d6c5b4a"
    with http_server("/robot/send", f"access_token={token}") as robot:
        cfg = DingTalkChannelConfig(kind="dingtalk", url=robot.url, secret=secret)  # type: ignore[arg-type]
        async with httpx.AsyncClient() as client:
            channel = DingTalkChannel("ding", cfg, client, wall_clock=lambda: WALL)
            await channel.send(_out())
            robot.script.append((200, '{"errcode":310000,"errmsg":"sign not match"}'))
            with pytest.raises(PermanentDeliveryError) as info:
                await channel.send(_out())
    assert secret not in str(info.value)
    assert token not in str(info.value)
    request = robot.requests[0]
    query = parse_qs(request.query)
    assert query["access_token"] == [token]
    timestamp = query["timestamp"][0]
    assert timestamp == "1767225600123"  # milliseconds
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]
    assert f"sign={quote_plus(expected)}" in request.query  # URL-encoded on the wire
    doc = request.json()
    assert doc["msgtype"] == "markdown"
    assert doc["markdown"]["title"] == "【严重】电表离线：M-101"
    text = doc["markdown"]["text"]
    assert text.index("电表 M-101 已 45 分钟无读数。") < text.index("Meter M-101 sent no reading for 45 minutes.")


async def test_dingtalk_without_secret_sends_the_url_unchanged() -> None:
    with http_server("/robot/send", "access_token=abc123456") as robot:
        cfg = DingTalkChannelConfig(kind="dingtalk", url=robot.url, msgtype="text")  # type: ignore[arg-type]
        async with httpx.AsyncClient() as client:
            await DingTalkChannel("ding", cfg, client).send(_out("info"))
    assert robot.requests[0].query == "access_token=abc123456"
    doc = robot.requests[0].json()
    assert doc["msgtype"] == "text"
    assert doc["text"]["content"].startswith("【提示】电表离线：M-101")


async def test_webhook_is_signed_over_timestamp_and_body() -> None:
    with http_server("/hook") as receiver:
        cfg = WebhookChannelConfig(kind="webhook", url=receiver.url, signing_secret="whsec-42",  # type: ignore[arg-type]
                                   headers={"X-Tenant": "park-a"})
        async with httpx.AsyncClient() as client:
            await WebhookChannel("hook", cfg, client, wall_clock=lambda: WALL).send(_out())
            receiver.script.append((404, "no such hook"))
            with pytest.raises(PermanentDeliveryError):
                await WebhookChannel("hook", cfg, client).send(_out())
    request = receiver.requests[0]
    assert request.headers["X-ParkPulse-Timestamp"] == "1767225600"
    mac = hmac.new(b"whsec-42", b"1767225600." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-ParkPulse-Signature"] == f"sha256={mac}"
    assert request.headers["X-Tenant"] == "park-a"
    assert request.headers["X-ParkPulse-Delivery"] == "22"
    doc = json.loads(request.body)
    assert doc["title"] == {"zh": "电表离线：M-101", "en": "Meter offline: M-101"}
    assert doc["created_at"] == "2026-03-02T01:05:00Z"
    assert doc["created_at_local"] == "2026-03-02T09:05:00+08:00"
    assert (doc["severity"], doc["alarm_id"], doc["delivery_id"]) == ("critical", 7, 22)


@given(st.text(), st.integers(min_value=4, max_value=200))
def test_truncation_keeps_a_valid_prefix_within_the_byte_limit(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    if len(text.encode("utf-8")) <= limit:
        assert cut == text
    else:
        assert cut.endswith("…")
        assert text.startswith(cut[:-1])
        assert len(cut.encode("utf-8")) <= limit
