"""EV chargers under dispatch: caps hold exactly, the shortfall is carried until departure, the rest is unmet."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from simulators import Scenario, load_scenario
from simulators._devices import ParkModel

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 0, 0, tzinfo=SH).astimezone(UTC)  # a Wednesday
DT_S = 60
CHARGERS = ("ev-dc-1", "ev-dc-2", "ev-ac-1", "ev-ac-2")
GROUP_CAP_KW = 10.0
DC1_CAP_KW = 20.0


def _with(scenario: Scenario, *, devices=None, dispatch=None, remove_others=False) -> Scenario:
    data = scenario.model_dump(mode="python")
    for device in data["devices"]:
        device.update((devices or {}).get(device["id"], {}))
    if remove_others:
        data["devices"] = [d for d in data["devices"] if d["id"] in (devices or {}) or d["kind"] == "electricity_meter"]
    if dispatch is not None:
        data["dispatch"] = dispatch
    return Scenario.model_validate(data)


def _run(scenario, n=1440, seed=11, start=START):
    model = ParkModel(scenario, seed=seed, start=start, sample_interval_s=DT_S)
    return model, list(model.run(n))


def _mid_local(ts):
    return (ts - timedelta(seconds=DT_S / 2)).astimezone(SH)


def _in(ts, start_h, end_h):
    hour = _mid_local(ts)
    return start_h <= hour.hour + hour.minute / 60 < end_h


@pytest.fixture(scope="module")
def runs():
    """The demo park for one day, without and with dispatch (dc-1 capped 08-10, all chargers 15-16)."""
    base = load_scenario().with_overrides(extra_meters=0)
    dispatched = _with(base, devices={"ev-dc-1": {"dispatch": [{"start_hour": 8, "end_hour": 10,
                                                                "max_power_kw": DC1_CAP_KW}]}},
                       dispatch={"ev_chargers": [{"start": datetime(2026, 7, 15, 15, tzinfo=SH),
                                                  "end": datetime(2026, 7, 15, 16, tzinfo=SH),
                                                  "max_power_kw": GROUP_CAP_KW}]})
    return _run(base), _run(dispatched)


def test_caps_hold_exactly_and_bite(runs):
    (_, free), (_, capped) = runs
    bit_dc1 = bit_group = 0
    for (ts, f), (_, c) in zip(free, capped, strict=True):
        if _in(ts, 8, 10):
            assert c["ev-dc-1"]["active_power"] <= DC1_CAP_KW
            bit_dc1 += f["ev-dc-1"]["active_power"] > DC1_CAP_KW
        if _in(ts, 15, 16):
            assert sum(c[ch]["active_power"] for ch in CHARGERS) <= GROUP_CAP_KW
            bit_group += sum(f[ch]["active_power"] for ch in CHARGERS) > GROUP_CAP_KW
    assert bit_dc1 > 10
    assert bit_group > 10


def test_registers_and_requested_energy_follow_the_published_power(runs):
    _, (_, capped) = runs
    for charger in CHARGERS:
        values = [v[charger] for _, v in capped]
        for prev, cur in pairwise(values):
            energy = cur["active_power"] * DT_S / 3600
            assert cur["active_energy_import"] - prev["active_energy_import"] == pytest.approx(energy, abs=1e-9)
            if cur["ev_connected"] == 0.0:
                assert cur["active_power"] == 0.0
                assert cur["ev_energy_requested"] == 0.0
            elif prev["ev_connected"] == 1.0 and cur["ev_energy_requested"] > 0:  # same session, still charging
                assert prev["ev_energy_requested"] - cur["ev_energy_requested"] == pytest.approx(energy, abs=2e-6)


def test_sessions_balance_and_only_dispatch_leaves_energy_unmet(runs):
    (free_model, _), (capped_model, _) = runs
    free, capped = free_model.ev_sessions(), capped_model.ev_sessions()
    assert free
    assert all(s.unmet_kwh == 0 for s in free)  # an uncapped session always completes before its departure
    for s in (*free, *capped):
        assert s.delivered_kwh + s.unmet_kwh == pytest.approx(s.requested_kwh, abs=1e-3)
        assert s.departed_at > s.arrived_at
    assert sum(s.unmet_kwh for s in capped) > 1.0
    # Sessions that ended before the first cap are the same: dispatch does not reshuffle the arrivals.
    first_cap = datetime(2026, 7, 15, 8, tzinfo=SH)
    assert [s for s in free if s.departed_at <= first_cap] == [s for s in capped if s.departed_at <= first_cap]


def test_capped_energy_is_made_up_after_the_window(runs):
    (_, free), (_, capped) = runs

    def energy(run, start_h, end_h):
        return sum(v[ch]["active_power"] for ts, v in run if _in(ts, start_h, end_h) for ch in CHARGERS) * DT_S / 3600

    assert energy(capped, 15, 16) < energy(free, 15, 16)
    assert energy(capped, 16, 17) > energy(free, 16, 17)  # catch-up after the group cap


def test_only_dispatched_devices_and_their_meters_change(runs):
    (_, free), (_, capped) = runs
    for (_, f), (_, c) in zip(free, capped, strict=True):
        for device in ("m2-office", "m2-workshop-a", "pv-1", "bess-1", "hvac-office-1", "m2-dc-facility"):
            assert f[device] == c[device]
        delta_ev = sum(f[ch]["active_power"] - c[ch]["active_power"] for ch in CHARGERS)
        delta_station = f["m2-energy-station"]["active_power"] - c["m2-energy-station"]["active_power"]
        delta_boundary = f["m1-boundary"]["active_power"] - c["m1-boundary"]["active_power"]
        assert delta_station == pytest.approx(delta_ev, abs=2e-3)
        assert delta_boundary == pytest.approx(delta_ev * 1.012, abs=5e-3)


def _single_charger(cap_window, *, dwell_min=0.0):
    """One 7 kW charger that certainly gets a 10 kWh car at 08:00 local, accepting exactly 7 kW."""
    base = load_scenario()
    return _with(base, remove_others=True, devices={"ev-ac-1": {
        "sessions_per_day": 1e7, "session_energy_kwh": (10.0, 10.0), "power_acceptance": (1.0, 1.0),
        "max_dwell_after_full_min": dwell_min, "dispatch": [cap_window]}})


def test_golden_capped_session_catches_up_until_departure_and_leaves_the_rest_unmet():
    # The car arrives in the first interval (08:00) wanting 10 kWh; it stays 10 / 7 h = 85.71 min plus one
    # interval = 86.71 min, i.e. it is connected for intervals 0..86 and leaves at the start of interval 87.
    # Capped at 3.5 kW for 60 min: 60 x 3.5 / 60 = 3.5 kWh; then 27 intervals at 7 kW = 3.15 kWh.
    # Delivered 6.65 kWh, unmet 10 - 6.65 = 3.35 kWh.
    start = datetime(2026, 7, 15, 8, tzinfo=SH).astimezone(UTC)
    scenario = _single_charger({"start_hour": 8, "end_hour": 9, "max_power_kw": 3.5})
    model, samples = _run(scenario, n=100, start=start)
    power = [v["ev-ac-1"]["active_power"] for _, v in samples]
    connected = [v["ev-ac-1"]["ev_connected"] for _, v in samples]
    assert power[:60] == [3.5] * 60
    assert power[60:87] == [7.0] * 27
    assert connected[:87] == [1.0] * 87
    assert connected[87] == 0.0
    [session] = model.ev_sessions()
    assert session.requested_kwh == 10.0
    assert session.delivered_kwh == pytest.approx(6.65, abs=1e-9)
    assert session.unmet_kwh == pytest.approx(3.35, abs=1e-9)
    assert session.departed_at - session.arrived_at == timedelta(minutes=87)


def test_golden_short_cap_is_fully_made_up_when_the_car_stays_long_enough():
    # Paused (0 kW) for the first 10 min of a session that may stay up to 600 min after its charge time:
    # 10 kWh at 7 kW = 85.71 min of charging, now over intervals 10..95; nothing is unmet.
    start = datetime(2026, 7, 15, 8, tzinfo=SH).astimezone(UTC)
    scenario = _single_charger({"start": datetime(2026, 7, 15, 8, tzinfo=SH),
                                "end": datetime(2026, 7, 15, 8, 10, tzinfo=SH), "max_power_kw": 0}, dwell_min=600)
    _, samples = _run(scenario, n=120, start=start)
    power = [v["ev-ac-1"]["active_power"] for _, v in samples]
    assert power[:10] == [0.0] * 10
    assert power[10:95] == [7.0] * 85
    assert power[95] == pytest.approx(10 * 60 - 85 * 7, abs=1e-3)  # last partial interval: 5 kW
    assert power[96:] == [0.0] * 24
    delivered = sum(power) * DT_S / 3600
    assert delivered == pytest.approx(10.0, abs=1e-3)
    assert samples[-1][1]["ev-ac-1"]["ev_energy_requested"] == 0.0
