"""Device physics over two simulated days of the shipped demo park (a Friday and a Saturday)."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from simulators import load_scenario
from simulators._devices import ParkModel

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 19, 0, 0, tzinfo=TZ).astimezone(UTC)  # Friday 00:00 local
DT_S = 60
N = 2 * 1440

# register metric -> (power metric, sign, units of register per (power unit x second))
REGISTERS = {
    "active_energy_import": ("active_power", 1, 1 / 3600),
    "active_energy_export": ("active_power", -1, 1 / 3600),
    "generated_energy": ("generation_power", 1, 1 / 3600),
    "battery_charge_energy": ("battery_power", 1, 1 / 3600),
    "battery_discharge_energy": ("battery_power", -1, 1 / 3600),
    "gas_volume": ("gas_flow", 1, 1 / 3600),
    "heat_energy": ("heat_power", 1, 1 / 1e6),
}


def run(scenario, seed=1, n=N, start=START):
    model = ParkModel(scenario, seed=seed, start=start, sample_interval_s=DT_S)
    return list(model.run(n))


@pytest.fixture(scope="module")
def scenario():
    return load_scenario()


@pytest.fixture(scope="module")
def samples(scenario):
    return run(scenario)


@pytest.fixture(scope="module")
def series(samples):
    """{device: {metric: [values]}}."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _, values in samples:
        for device, metrics in values.items():
            for metric, value in metrics.items():
                out[device][metric].append(value)
    return out


@pytest.fixture(scope="module")
def local_times(samples):
    """Local time of each interval's midpoint."""
    return [(ts - timedelta(seconds=DT_S / 2)).astimezone(TZ) for ts, _ in samples]


def test_same_seed_same_output_and_other_seed_differs(scenario, samples):
    assert run(scenario, n=200) == samples[:200]
    assert run(scenario, seed=2, n=200) != samples[:200]


def test_adding_meters_does_not_change_other_devices(scenario, samples):
    bigger = run(scenario.with_overrides(extra_meters=20), n=100)
    for (_, small), (_, big) in zip(samples[:100], bigger, strict=True):
        assert small["m2-office"] == big["m2-office"]
        assert small["pv-1"] == big["pv-1"]


def test_timestamps_are_the_sample_grid(samples):
    assert [ts for ts, _ in samples][:2] == [START.replace(minute=1), START.replace(minute=2)]
    assert all(ts.tzinfo is not None for ts, _ in samples)


def test_registers_never_decrease_and_integrate_the_power(series):
    checked = 0
    for device, metrics in series.items():
        for register, (power_metric, sign, factor) in REGISTERS.items():
            if register not in metrics or power_metric not in metrics:
                continue
            reg, power = metrics[register], metrics[power_metric]
            for k in range(1, len(reg)):
                delta = reg[k] - reg[k - 1]
                assert delta >= 0, (device, register, k)
                assert delta == pytest.approx(max(sign * power[k], 0.0) * DT_S * factor, rel=1e-9, abs=1e-7), (
                    device, register, k)
            checked += 1
    assert checked >= 20


def test_every_metric_is_reported_every_sample(samples, scenario):
    model = ParkModel(scenario, seed=1, start=START, sample_interval_s=DT_S)
    expected = {d.spec.id: set(d.metrics) for d in model.devices}
    for _, values in samples[:5]:
        assert {k: set(v) for k, v in values.items()} == expected


def test_pv_is_zero_at_local_night_and_positive_at_local_noon(series, local_times):
    pv = series["pv-1"]["generation_power"]
    night = [p for p, t in zip(pv, local_times, strict=True) if t.hour < 5 or t.hour >= 20]
    noon = [p for p, t in zip(pv, local_times, strict=True) if 11 <= t.hour < 14]
    assert night
    assert all(p == 0.0 for p in night)
    assert noon
    assert all(p > 0 for p in noon)
    assert max(pv) <= 400
    # bell shape: the midday mean beats the early-morning and late-afternoon means
    morning = [p for p, t in zip(pv, local_times, strict=True) if 7 <= t.hour < 8]
    assert sum(noon) / len(noon) > 2 * sum(morning) / len(morning)


def test_battery_soc_stays_in_bounds_and_matches_the_energy(series, scenario):
    spec = next(d for d in scenario.devices if d.id == "bess-1")
    bat = series["bess-1"]
    soc, charge, discharge = bat["state_of_charge"], bat["battery_charge_energy"], bat["battery_discharge_energy"]
    assert all(spec.soc_min_pct - 1e-9 <= s <= spec.soc_max_pct + 1e-9 for s in soc)
    for k in range(1, len(soc)):
        stored_delta = (soc[k] - soc[k - 1]) * spec.capacity_kwh / 100
        expected = (charge[k] - charge[k - 1]) * spec.charge_efficiency - (
            discharge[k] - discharge[k - 1]) / spec.discharge_efficiency
        assert stored_delta == pytest.approx(expected, abs=1e-6)
    assert max(bat["battery_power"]) > 0
    assert min(bat["battery_power"]) < 0


def test_battery_charges_at_night_and_discharges_in_the_evening_peak(series, local_times):
    power = series["bess-1"]["battery_power"]
    assert any(p > 0 for p, t in zip(power, local_times, strict=True) if t.hour < 7)
    assert all(p <= 0 for p, t in zip(power, local_times, strict=True) if 17 <= t.hour < 21)
    assert any(p < 0 for p, t in zip(power, local_times, strict=True) if 17 <= t.hour < 21)


def test_data_centre_daily_pue_is_in_range_and_follows_temperature(series, local_times):
    facility, it = series["m2-dc-facility"]["active_energy_import"], series["m3-dc-it"]["active_energy_import"]
    for day in (slice(0, 1440), slice(1440, 2880)):
        f, i = facility[day], it[day]
        assert 1.30 <= (f[-1] - f[0]) / (i[-1] - i[0]) <= 1.45
    ratio = [f / i for f, i in zip(series["m2-dc-facility"]["active_power"], series["m3-dc-it"]["active_power"],
                                   strict=True)]
    assert all(1.30 - 1e-3 <= r <= 1.45 + 1e-3 for r in ratio)
    afternoon = [r for r, t in zip(ratio, local_times, strict=True) if 13 <= t.hour < 16]
    dawn = [r for r, t in zip(ratio, local_times, strict=True) if 4 <= t.hour < 7]
    assert sum(afternoon) / len(afternoon) > sum(dawn) / len(dawn)


def test_boundary_equals_level2_meters_plus_losses(series, scenario):
    level2 = [d.id for d in scenario.devices if d.parent == "m1-boundary"]
    assert len(level2) == 4

    def net(device):
        m = series[device]
        export = m.get("active_energy_export", [0.0, 0.0])
        return (m["active_energy_import"][-1] - m["active_energy_import"][0]) - (export[-1] - export[0])

    boundary, parts = net("m1-boundary"), sum(net(d) for d in level2)
    assert boundary == pytest.approx(parts * 1.012, rel=1e-4)
    assert 0.005 < boundary / parts - 1 < 0.02


def test_workshop_meter_includes_its_level3_meters(series, scenario):
    extras = [d.id for d in scenario.all_devices() if d.parent == "m2-workshop-a"]
    assert len(extras) == scenario.extra_meters == 4
    own = [w - sum(series[e]["active_power"][k] for e in extras)
           for k, w in enumerate(series["m2-workshop-a"]["active_power"])]
    assert min(own) > 0


def test_office_load_has_a_daily_and_weekly_shape(series, local_times):
    office = series["m2-office"]["active_power"]

    def mean(day, hours):
        values = [p for p, t in zip(office, local_times, strict=True) if t.weekday() == day and t.hour in hours]
        return sum(values) / len(values)

    friday, saturday = 4, 5
    assert mean(friday, range(9, 12)) > 3 * mean(friday, range(1, 5))      # night base vs morning
    assert mean(friday, [12]) < mean(friday, [11])                            # lunch dip
    assert mean(friday, range(20, 24)) < mean(friday, range(14, 17))        # evening decline
    assert mean(friday, range(9, 17)) > 1.8 * mean(saturday, range(9, 17))  # weekend


def test_ev_sessions(series, local_times):
    for charger in ("ev-dc-1", "ev-dc-2", "ev-ac-1", "ev-ac-2"):
        ev = series[charger]
        connected, power, requested = ev["ev_connected"], ev["active_power"], ev["ev_energy_requested"]
        assert set(connected) <= {0.0, 1.0}
        for k, c in enumerate(connected):
            if c == 0.0:
                assert power[k] == 0.0
                assert requested[k] == 0.0
            if k and c == 1.0 and connected[k - 1] == 1.0:
                assert requested[k] <= requested[k - 1] + 1e-9
        assert max(power) <= 60
    dc = series["ev-dc-1"]
    assert sum(dc["ev_connected"]) > 0
    arrivals = [t.hour for k, t in enumerate(local_times)
                if k and dc["ev_connected"][k] == 1.0 and dc["ev_connected"][k - 1] == 0.0]
    assert arrivals


def test_gas_and_heat_meters(series):
    gas, heat = series["gas-boundary"], series["heat-workshop-a"]
    assert min(gas["gas_flow"]) >= 0
    assert max(gas["gas_flow"]) < 150
    assert all(r < s for r, s in zip(heat["return_temperature"], heat["supply_temperature"], strict=True))
    assert 75 < sum(heat["supply_temperature"]) / len(heat["supply_temperature"]) < 95


def test_electricity_meter_phase_values(series):
    m = series["m2-office"]
    for k in range(0, N, 97):
        volts = [m[f"voltage_l{i}"][k] for i in (1, 2, 3)]
        amps = [m[f"current_l{i}"][k] for i in (1, 2, 3)]
        assert all(220 < v < 240 for v in volts)
        assert 0.5 <= m["power_factor"][k] <= 1
        rebuilt = sum(v * a for v, a in zip(volts, amps, strict=True)) * m["power_factor"][k] / 1000
        assert rebuilt == pytest.approx(abs(m["active_power"][k]), rel=1e-3, abs=0.01)


def test_register_rollover_when_configured_near_the_max(scenario):
    data = scenario.model_dump()
    meter = next(d for d in data["devices"] if d["id"] == "m2-workshop-a")
    meter["initial_registers"] = {"active_energy_import": 999_950.0}
    rolled = type(scenario).model_validate(data)
    samples = run(rolled, n=240)
    reg = [values["m2-workshop-a"]["active_energy_import"] for _, values in samples]
    power = [values["m2-workshop-a"]["active_power"] for _, values in samples]
    wraps = [k for k in range(1, len(reg)) if reg[k] < reg[k - 1]]
    assert len(wraps) == 1
    k = wraps[0]
    assert reg[k - 1] > 999_000
    assert reg[k] < 1_000
    unwrapped = reg[k] + 1_000_000 - reg[k - 1]
    assert unwrapped == pytest.approx(power[k] * DT_S / 3600, rel=1e-6)
    assert all(0 <= r < 1_000_000 for r in reg)
