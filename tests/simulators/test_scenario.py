"""Loading and validating scenario files."""

import pytest
import yaml

import simulators
from infra.db import ParkRecord, SiteRecord
from simulators import DEFAULT_SCENARIO, Scenario, ScenarioError, load_scenario
from simulators._device_specs import ElectricityMeterSpec


def test_public_api_is_exported():
    assert set(simulators.__all__) >= {"simulate", "Scenario", "load_scenario", "run_simulation", "SimulationReport"}
    for name in simulators.__all__:
        assert getattr(simulators, name) is not None


def test_shipped_scenario_loads():
    scenario = load_scenario()
    assert DEFAULT_SCENARIO.name == "demo_park.yaml"
    assert scenario.park.id == "demo-park"
    kinds = {d.kind for d in scenario.devices}
    assert kinds >= {"electricity_meter", "pv_inverter", "battery", "ev_charger", "gas_meter", "heat_meter"}
    roles = {d.role for d in scenario.devices}
    assert roles >= {"park_boundary", "dc_facility", "dc_it", "public_building", "workshop"}
    boundary = [d for d in scenario.devices if d.kind == "electricity_meter" and d.metering_level == 1]
    assert [d.role for d in boundary] == ["park_boundary"]
    assert scenario.faults.duplicate_message_rate == 0
    assert scenario.faults.malformed_message_rate == 0


def test_park_and_site_records():
    scenario = load_scenario()
    assert scenario.park_record() == ParkRecord("demo-park", "示范产业园 Demo Industrial Park", "Asia/Shanghai", "广东",
                                                "南方")
    sites = scenario.site_records()
    assert all(isinstance(s, SiteRecord) for s in sites)
    public = [s for s in sites if s.is_public_building]
    assert len(public) == 1
    assert public[0].floor_area_m2 == 12000
    assert {s.kind for s in sites} >= {"building", "workshop", "station", "data_centre"}


def test_extra_meters_scale_the_park():
    scenario = load_scenario().with_overrides(extra_meters=250)
    meters = [d for d in scenario.all_devices() if d.id.startswith("m3-wa-")]
    assert len(meters) == 250
    assert meters[0].id == "m3-wa-0001"
    assert meters[-1].id == "m3-wa-0250"
    assert all(isinstance(m, ElectricityMeterSpec) and m.metering_level == 3 and m.parent == "m2-workshop-a"
               for m in meters)


def test_overrides_keep_the_rest():
    base = load_scenario()
    changed = base.with_overrides(park_id="other-park", duplicate_message_rate=0.1, sample_interval_s=30)
    assert changed.park.id == "other-park"
    assert changed.faults.duplicate_message_rate == 0.1
    assert changed.simulation.sample_interval_s == 30
    assert changed.devices == base.devices


def write(tmp_path, data):
    path = tmp_path / "park.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data, "utf-8")
    return path


def demo_data():
    return yaml.safe_load(DEFAULT_SCENARIO.read_text("utf-8"))


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "nope.yaml")


def test_not_yaml_names_the_line(tmp_path):
    with pytest.raises(ScenarioError, match=r"line 4, column 11: not valid YAML"):
        load_scenario(write(tmp_path, "park:\n  id: x\n  name: [a, b\n  timezone: UTC\n"))


def test_not_a_mapping(tmp_path):
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(write(tmp_path, "- just\n- a list\n"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["devices"][6].update(capacity_kwh=-1), r"devices\[6\] \(m3-dc-it\)\.capacity_kwh: Extra inputs"),
        (lambda d: d["devices"][8].update(capacity_kwh=-1), r"devices\[8\] \(bess-1\)\.capacity_kwh: .*greater than 0"),
        (lambda d: d["devices"][1].update(kind="toaster"), r"devices\[1\] \(m2-office\).*tag 'toaster'"),
        (lambda d: d["devices"][1].update(parent="nowhere"), r"parent 'nowhere' is not an electricity meter"),
        (lambda d: d["devices"][1].update(site="mars"), r"unknown site 'mars'"),
        (lambda d: d["devices"][2].update(id="m2-office"), r"duplicate device id 'm2-office'"),
        (lambda d: d["devices"][1].update(id="Bad Id"), r"devices\[1\] \(Bad Id\)\.id: String should match"),
        (lambda d: d["park"].update(timezone="Mars/Olympus"), r"park\.timezone: .*unknown IANA time zone"),
        (lambda d: d["devices"][0].update(parent="m2-office"), r"parent chain loops"),
        (lambda d: d["devices"][13].update(parent="m1-boundary"), r"gas_meter cannot sit below"),
        (lambda d: d["devices"][1].update(initial_registers={"gas_volume": 5}), r"not a register of a electricity"),
        (lambda d: d["devices"][1].update(initial_registers={"active_energy_import": 2e6}), r"below register_max"),
        (lambda d: d["devices"][8].update(initial_soc_pct=99), r"soc_min_pct <= initial_soc_pct"),
        (lambda d: d["devices"][8]["schedule"][0].update(follow_pv_fraction=0.5), r"exactly one of power_kw"),
        (lambda d: d.update(extra_meters=-1), r"extra_meters: .*greater than or equal to 0"),
        (lambda d: d["extra_meter_template"].update(parent="pv-1"), r"parent 'pv-1' is not an electricity meter"),
    ],
)
def test_bad_scenarios_say_what_and_where(tmp_path, mutate, message):
    data = demo_data()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ScenarioError, match=message) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert info.value.problems


def test_minimal_scenario_gets_defaults():
    scenario = Scenario.model_validate({"park": {"id": "tiny"}})
    assert scenario.all_devices() == []
    assert scenario.simulation.sample_interval_s == 60
    assert scenario.simulation.batch_interval_s == 900
    assert scenario.park.timezone == "Asia/Shanghai"
