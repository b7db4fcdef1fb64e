"""``parkpulse demo --dr``'s engine: one openleadr event through the whole loop, planned vs delivered printed."""

from __future__ import annotations

import re
import uuid

import pytest

from parkpulse._demo_dr import run_demo_dr


def scenario_demo_prints_planned_vs_delivered(database_url: str, mqtt_url: str) -> None:
    text = run_demo_dr(database_url, mqtt_url, park_id=f"t-demo-dr-{uuid.uuid4().hex[:8]}", reduction_kw=80.0,
                       n_intervals=2)
    lines = text.splitlines()
    assert "committed 80.0 kW" in lines[0]
    rows = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    assert len(rows) == 2
    total = re.search(r"planned ([\d.]+) kWh, delivered ([\d.]+) kWh \((\d+)%\)", text)
    assert total is not None, text
    planned, delivered = float(total.group(1)), float(total.group(2))
    assert planned == pytest.approx(80.0 * 2 / 60, abs=0.01)
    assert 0.6 * planned <= delivered <= 1.4 * planned  # the battery shed the load the meter saw
    assert "first setpoint acknowledged" in text
