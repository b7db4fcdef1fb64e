"""MQTT plumbing for device sessions: an aiomqtt client that honours PUBACK reason codes, and helpers.

aiomqtt 2.x returns from ``publish(qos=1)`` when the PUBACK arrives, but ignores the PUBACK's reason code:
a broker that refuses the message (MQTT v5 reason 0x87 "not authorised" when the ACL does not allow the
topic) looks like a success, and an outbox that deletes on "success" would silently lose the data.
:class:`ConfirmingClient` records failing reason codes per message id and raises
:class:`edge.errors.PublishRejectedError` instead. It uses aiomqtt 2.x internals (``_on_publish``,
``_pending_call``), which is why the project pins ``aiomqtt<3``; v3 exposes PUBACKs directly.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import NoSubscribersError, PublishRejectedError
from infra.settings import MqttEndpoint

NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT v5 PUBACK reason code: accepted, but nobody subscribed


class ConfirmingClient(aiomqtt.Client):
    """An aiomqtt client whose :meth:`publish_confirmed` fails when the broker rejects the message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the client (same arguments as :class:`aiomqtt.Client`)."""
        super().__init__(*args, **kwargs)
        self._puback_failures: dict[int, ReasonCode] = {}
        self.pending_calls_threshold = 1_000_000  # we publish whole batches concurrently on purpose

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Any) -> None:
        if getattr(reason_code, "is_failure", False) or getattr(reason_code, "value", 0) == NO_MATCHING_SUBSCRIBERS:
            self._puback_failures[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_confirmed(self, topic: str, payload: bytes, *, retain: bool = False,
                                timeout: float = 15.0, require_subscriber: bool = False) -> None:
        """Publish at QoS 1 and return only after a *successful* PUBACK.

        Raises :class:`aiomqtt.MqttError` when the connection fails or the PUBACK does not come within
        ``timeout``, and :class:`PublishRejectedError` when the broker answers with an error reason code.
        With ``require_subscriber`` a PUBACK saying "no matching subscribers" (0x10, MQTT v5) raises
        :class:`NoSubscribersError`: the broker dropped the message, so the caller must keep it.
        """
        info = self._client.publish(topic, payload, 1, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                await self._wait_for(confirmation.wait(), timeout=timeout)
        code = self._puback_failures.pop(info.mid, None)
        if code is None:
            return
        if int(code.value) == NO_MATCHING_SUBSCRIBERS:
            if require_subscriber:
                raise NoSubscribersError(topic, NO_MATCHING_SUBSCRIBERS, str(code))
            return
        raise PublishRejectedError(topic, int(code.value), str(code))


    def consume_disconnect_error(self) -> BaseException | None:
        """Read (and so silence) the reason of a broker-side disconnect after the session ended.

        aiomqtt stores it in a future that nobody awaits once we leave ``async with`` for another reason;
        asyncio would then log "Future exception was never retrieved" for every reconnect.
        """
        future = self._disconnected
        if future.done() and not future.cancelled():
            return future.exception()
        return None


def tls_parameters(endpoint: MqttEndpoint, ca_file: Path | None,
                   client_certificate: tuple[Path, Path] | None = None) -> aiomqtt.TLSParameters | None:
    """TLS settings for ``mqtts://`` brokers (system CAs unless ``ca_file`` is given).

    ``client_certificate`` (certificate, key) authenticates the device itself to a broker that asks for
    client certificates.
    """
    if not endpoint.tls:
        return None
    cert, key = client_certificate if client_certificate else (None, None)
    return aiomqtt.TLSParameters(ca_certs=str(ca_file) if ca_file else None, cert_reqs=ssl.CERT_REQUIRED,
                                 certfile=str(cert) if cert else None, keyfile=str(key) if key else None)


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Capped, fully jittered exponential backoff: ``uniform(0, min(max_s, initial_s * 2**attempt))``.

    Jitter spreads the reconnects of hundreds of device sessions after a broker restart, so they do not
    arrive as one thundering herd.
    """
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt, 30))
    return (rng or random).uniform(0.0, ceiling)


__all__ = ["ConfirmingClient", "backoff_delay", "tls_parameters"]
