"""What a kill -9 of the production broker keeps: the persistence settings of deploy/mosquitto/parkpulse.conf
(autosave every 2 s, time-based) measured on a real Mosquitto.

Ingest is moving to plain (non-shared) persistent subscriptions and relies on Mosquitto restoring them,
and the QoS 1 messages queued for them, after a restart. A clean stop saves everything; kill -9 falls back
to the last autosave. These tests pin both sides of that: what was saved survives (the subscription still
matches, so a device's PUBACK is 0, not 0x10 "no matching subscribers", and queued messages arrive), and
what arrived after the last save is gone (the cost the configuration comments state).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.deploy_broker import (
    NO_MATCHING_SUBSCRIBERS,
    DeployBroker,
    Session,
    make_pki,
    mosquitto_binaries,
)

pytestmark = pytest.mark.skipif(mosquitto_binaries() is None, reason="mosquitto is not installed")

USERS = {"ingest": "pw-ingest", "park-a/m1": "pw-a-m1"}
READINGS = "parkpulse/v1/park-a/m1/readings"
INGEST_ID = "ingest-1"
EXPIRY_S = 3600


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployBroker]:
    base = tmp_path_factory.mktemp("persist")
    broker = DeployBroker(base, users=USERS, pki=make_pki(base / "pki"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _ingest(broker: DeployBroker) -> Session:
    """Ingest's persistent session (clean_start False, session expiry), on the internal listener."""
    return Session(broker.plain_port, "ingest", USERS["ingest"], client_id=INGEST_ID, session_expiry_s=EXPIRY_S)


def _publish(broker: DeployBroker, count: int, tag: str) -> list[int]:
    device = Session(broker.plain_port, "park-a/m1", USERS["park-a/m1"])
    try:
        return [device.publish(READINGS, f"{tag}-{i}".encode()) for i in range(count)]
    finally:
        device.close()


def _payloads_until(session: Session, last: str) -> list[str]:
    """Payloads received up to and including ``last``. A restored session gets its queued messages right
    after CONNACK, so whatever it had queued arrives before a message published after it reconnected."""
    got: list[str] = []
    while not got or got[-1] != last:
        got.append(session.messages.get(timeout=10).payload.decode())
    return got


def test_a_saved_subscription_and_its_queue_survive_kill_9(broker: DeployBroker) -> None:
    ingest = _ingest(broker)
    before = broker.snapshot_mtime()
    assert ingest.subscribe("parkpulse/v1/#") < 0x80  # plain persistent subscription, no $share
    ingest.close()
    broker.wait_for_snapshot(before)  # the autosave after the SUBSCRIBE (at most ~2 s)
    saved = broker.snapshot_mtime()
    assert _publish(broker, 3, "queued") == [0, 0, 0]  # ingest is away: queued for its session
    broker.wait_for_snapshot(saved)  # ... and saved with the next autosave

    broker.kill()
    broker.start()

    # the subscription is back: a device's reading finds a subscriber (0, not 0x10) and is queued too
    assert _publish(broker, 1, "after-restart") == [0]
    ingest = _ingest(broker)
    try:
        assert ingest.session_present is True
        assert _payloads_until(ingest, "after-restart-0") == ["queued-0", "queued-1", "queued-2", "after-restart-0"]
    finally:
        ingest.close()


def test_kill_9_loses_what_arrived_after_the_last_autosave(broker: DeployBroker) -> None:
    """The documented cost: acknowledged (PUBACK 0) but unsaved queued messages are gone after kill -9."""
    ingest = _ingest(broker)
    before = broker.snapshot_mtime()
    assert ingest.subscribe("parkpulse/v1/#") < 0x80
    ingest.close()
    broker.wait_for_snapshot(before)
    just_saved = broker.snapshot_mtime()  # the next autosave is about 2 s away; the next steps take ms
    assert _publish(broker, 3, "lost") == [0, 0, 0]
    unsaved = broker.snapshot_mtime() == just_saved
    broker.kill()
    if not unsaved:  # pragma: no cover - an autosave slipped in between (a very slow machine)
        pytest.skip("an autosave happened before the kill; nothing to measure")
    broker.start()

    ingest = _ingest(broker)
    try:
        assert ingest.session_present is True  # the session and its subscription were saved ...
        assert _publish(broker, 1, "after") == [0]
        assert _payloads_until(ingest, "after-0") == ["after-0"]  # ... the 3 acknowledged ones after it were not
    finally:
        ingest.close()


def test_an_unsaved_subscription_is_gone_after_kill_9_and_devices_see_0x10(broker: DeployBroker) -> None:
    """Why the edge agent keeps readings on PUBACK 0x10 and ingest must subscribe again on every connect."""
    just_saved = broker.snapshot_mtime()
    broker.wait_for_snapshot(just_saved)  # align with the autosave clock: ~2 s until the next one
    just_saved = broker.snapshot_mtime()
    ingest = _ingest(broker)
    assert ingest.subscribe("parkpulse/v1/#") < 0x80
    ingest.close()
    unsaved = broker.snapshot_mtime() == just_saved
    broker.kill()
    if not unsaved:  # pragma: no cover - see above
        pytest.skip("an autosave happened before the kill; nothing to measure")
    broker.start()
    assert _publish(broker, 1, "nobody") == [NO_MATCHING_SUBSCRIBERS]
    ingest = _ingest(broker)
    try:
        assert ingest.session_present is False
    finally:
        ingest.close()
