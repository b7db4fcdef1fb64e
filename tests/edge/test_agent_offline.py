"""The agent with no broker at all: it keeps polling into the bounded outbox and applies the full policy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from edge.outbox import Outbox, read_stats
from simulators.protocol.site import build_site
from tests.edge.helpers import agent_config, free_port, refused_port, running_agent, wait_until


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
async def test_outbox_full_policy_while_the_broker_is_unreachable(policy: str, tmp_path: Path) -> None:
    site = build_site(n_modbus=1, n_dlt645=0, modbus_port=free_port(), prefix=f"f{uuid.uuid4().hex[:4]}")
    await site.start()
    outbox = tmp_path / "outbox.sqlite"
    try:
        with refused_port() as port:
            config = agent_config("full-park", f"mqtt://127.0.0.1:{port}", outbox,
                                  site.device_entries(poll_interval_s=0.2),
                                  outbox={"max_messages": 5, "full_policy": policy})
            async with running_agent(config) as agent:
                await wait_until(lambda: read_stats(outbox).dropped_messages >= 3, timeout=30)
                assert not any(s.connected.is_set() for s in agent.sessions.values())
    finally:
        await site.stop()
    stats = read_stats(outbox)
    assert stats.pending_messages == 5                                    # bounded ...
    assert stats.enqueued_messages == stats.pending_messages + stats.dropped_messages  # ... and accounted
    assert stats.dropped_readings == 13 * stats.dropped_messages          # SDM630 profile: 13 points per poll
    device = site.entries[0]["id"]
    with Outbox(outbox) as box:
        kept = [m.seq for m in box.fetch(device)]
    last = stats.enqueued_messages - 1
    expected = list(range(last - 4, last + 1)) if policy == "drop_oldest" else [0, 1, 2, 3, 4]
    assert kept == expected
