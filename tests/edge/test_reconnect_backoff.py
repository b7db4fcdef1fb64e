"""Reconnect backoff of a device session against a broker that takes connections but drops readings.

After a broker restart Mosquitto accepts CONNECTs at once but answers readings with PUBACK 0x10 ("no
matching subscribers") until ingest has subscribed again. The session used to reset its backoff on
CONNACK, so every meter reconnected about every 0.25 s and republished birth and status each time (24
meters: 630 reconnects in 20 s). Now the backoff grows until the broker accepts a readings publish (or
birth and status when nothing is queued). Counting connects is checked against a bound derived from the
backoff schedule, not against a time measurement: sleeping is what the schedule guarantees.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import pytest

import edge.session
from edge.mqtt import backoff_delay
from simulators.protocol.site import build_site
from tests.edge.helpers import Mosquitto, agent_config, collect, free_port, running_agent, wait_until

INITIAL_S, MAX_S = 0.05, 2.0
WINDOW_S = 3.0


class _Midpoint(random.Random):
    """An RNG whose ``uniform(a, b)`` is the middle of the range: the jittered delay's expected value."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def _max_connects(elapsed_s: float) -> int:
    """Most connects the schedule allows in ``elapsed_s`` with every delay at its midpoint.

    One connect may end the sleep already under way when the window opens; every further one needs a
    full sleep first, and sleeps never shrink while nothing is accepted. Starting the sum at attempt 0
    (the shortest sleeps) makes this an upper bound whatever attempt the window starts at.
    """
    total, count = 0.0, 0
    while True:
        total += backoff_delay(count, initial_s=INITIAL_S, max_s=MAX_S, rng=_Midpoint())
        if total > elapsed_s:
            return 1 + count
        count += 1


def test_backoff_delay_is_jittered_and_capped() -> None:
    delays = [backoff_delay(3, initial_s=0.5, max_s=30.0, rng=random.Random(seed)) for seed in range(50)]
    assert all(0.0 <= d <= 4.0 for d in delays)  # uniform(0, min(30, 0.5 * 2**3))
    assert len(set(delays)) == len(delays)  # spread, not one value for every device
    assert max(backoff_delay(40, initial_s=0.5, max_s=30.0, rng=random.Random(s)) for s in range(50)) <= 30.0


async def test_backoff_grows_while_readings_find_no_subscriber_and_resets_after_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def recording_backoff(attempt: int, *, initial_s: float, max_s: float) -> float:
        attempts.append(attempt)
        return backoff_delay(attempt, initial_s=initial_s, max_s=max_s, rng=_Midpoint())

    monkeypatch.setattr(edge.session, "backoff_delay", recording_backoff)
    park = f"backoff-{uuid.uuid4().hex[:6]}"
    broker = Mosquitto(tmp_path / "mq")  # anonymous, persistence on; nobody subscribes to anything yet
    broker.start()
    site = build_site(n_modbus=1, n_dlt645=0, modbus_port=free_port(), prefix=f"b{uuid.uuid4().hex[:4]}")
    await site.start()
    try:
        config = agent_config(park, broker.url, tmp_path / "outbox.sqlite", site.device_entries(poll_interval_s=0.2),
                              mqtt={"backoff": {"initial_s": INITIAL_S, "max_s": MAX_S}}, shutdown_grace_s=0.5)
        device = config.devices[0].id
        async with running_agent(config) as agent:
            session = agent.sessions[device]
            await wait_until(lambda: session.undelivered_retries >= 1, timeout=30)  # readings got 0x10
            first, connects, started = len(attempts), session.connects, time.monotonic()
            await asyncio.sleep(WINDOW_S)
            elapsed = time.monotonic() - started
            during = attempts[first:]
            made = session.connects - connects
            # every session failed (0x10), so the backoff never started over ...
            assert during == list(range(during[0], during[0] + len(during))), during
            # ... and the reconnects stay within the schedule (a reset on CONNACK made ~50 here)
            assert 2 <= made <= _max_connects(elapsed), (made, during)
            assert session.published_messages == 0

            async with collect(broker.port, park, client_id=f"c-{park}") as seen:  # ingest is back
                await wait_until(lambda: len(seen.seqs(device)) >= 1, timeout=2 * MAX_S + 10)
                await wait_until(lambda: session.backoff_attempt == 0, timeout=10)  # accepted: reset
            # The collector's persistent session keeps matching. A broker restart now starts at attempt 0.
            before = len(attempts)
            broker.stop()
            broker.start()
            await wait_until(lambda: len(attempts) > before and session.connected.is_set(), timeout=30)
            assert attempts[before] == 0
    finally:
        await site.stop()
        broker.stop()
