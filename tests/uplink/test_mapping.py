"""The mapping on a small hand-made park: every value below is computed by hand from the inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.uplink_record import UplinkRecord
from uplink._items import load_items
from uplink._keys import parse_record_key
from uplink._mapping import DeclaredRow, MappingInputs, Meter, MeterPeriod, compute_records, instrument_register
from uplink._quality import check_records

SH = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 20, tzinfo=SH)
NOW = datetime(2026, 12, 2, tzinfo=SH)
METERS = (Meter(1, "m1", "active_energy_import", "electricity", "electricity_meter", 1, "park_boundary",
                accuracy_class="0.5S", calibration_date=date(2026, 3, 1)),
          Meter(2, "m2", "active_energy_import", "electricity", "electricity_meter", 1),
          Meter(3, "m3", "active_energy_import", "electricity", "electricity_meter", 2),
          Meter(4, "g1", "gas_volume", "gas", "gas_meter", 1))


def _utc(local: datetime) -> datetime:
    return local.astimezone(UTC)


def _inputs(**extra: object) -> MappingInputs:
    q = timedelta(minutes=15)
    nov = datetime(2026, 11, 1, tzinfo=SH)
    periods = (
        MeterPeriod(1, "15min", _utc(DAY), 10.0, 0.0, 1), MeterPeriod(2, "15min", _utc(DAY), 5.0, 5.0, 1),
        MeterPeriod(1, "15min", _utc(DAY + q), 10.0, 0.0, 1),
        MeterPeriod(1, "day", _utc(DAY), 960.0, 0.0, 96), MeterPeriod(2, "day", _utc(DAY), 480.0, 48.0, 90),
        MeterPeriod(4, "day", _utc(DAY), 100.0, 0.0, 96),
        MeterPeriod(1, "month", _utc(nov), 28800.0, 0.0, 2880), MeterPeriod(2, "month", _utc(nov), 14400.0, 0.0, 2880),
        MeterPeriod(4, "month", _utc(nov), 3000.0, 0.0, 2880),
    )
    declared = (DeclaredRow("value_added", "", date(2026, 11, 1), date(2026, 12, 1), 300.0),
                DeclaredRow("gross_output", "", date(2026, 10, 1), date(2027, 1, 1), 920.0),
                DeclaredRow("product_output", "", date(2026, 11, 1), date(2026, 12, 1), 100.0))
    base: dict[str, object] = {
        "park_id": "p1", "timezone": "Asia/Shanghai", "enterprise_code": "914403001234567890", "meters": METERS,
        "periods": periods, "monthly_tce": {("calorific", date(2026, 11, 1)): 5.5}, "declared": declared}
    base.update(extra)
    return MappingInputs(**base)  # type: ignore[arg-type]


def _records() -> dict[str, UplinkRecord]:
    table = load_items("national-json")
    out = compute_records(table, _inputs(), date(2026, 11, 20), date(2026, 11, 21), now=NOW)
    return {r.record_key: r for r in out}


def test_metered_15min_values_quality_and_completeness() -> None:
    recs = _records()
    first = recs["p1|01010001|15min|2026-11-20T00:00:00+08:00"]
    second = recs["p1|01010001|15min|2026-11-20T00:15:00+08:00"]
    assert (first.value, first.quality, first.completeness) == (15.0, "estimated", 1.0)   # m2's 5 kWh estimated
    assert (second.value, second.quality, second.completeness) == (10.0, "measured", 0.5)  # m2 missing
    assert first.meter_codes == ("m1", "m2")
    assert first.unit == "kWh"
    assert first.revision == 1
    assert first.period_start == DAY
    assert first.enterprise_code == "914403001234567890"
    # no data at 00:30 → no record (absence is a quality flag, never a zero)
    assert "p1|01010001|15min|2026-11-20T00:30:00+08:00" not in recs
    assert sum(1 for k in recs if "|15min|" in k and "|01010001|" in k) == 2


def test_daily_carriers_total_energy_and_unbound_items() -> None:
    recs = _records()
    elec = recs["p1|01010001|day|2026-11-20T00:00:00+08:00"]
    assert elec.value == pytest.approx(1440.0)
    assert elec.quality == "estimated"
    assert elec.completeness == pytest.approx((96 + 90) / 192)
    total = recs["p1|90000001|day|2026-11-20T00:00:00+08:00"]
    assert total.value == pytest.approx(1440 * 0.0001229 + 100 * 0.0012143)
    assert total.unit == "tce"
    assert total.completeness == pytest.approx((96 + 90 + 96) / 288)
    # no level-2 data, no export meter, no heat meter: no records for those items
    assert not [k for k in recs if "|01040002|" in k or "|01020001|" in k or "|03010001|" in k]


def test_month_uses_published_indicator_and_declared_data() -> None:
    recs = _records()
    month = "2026-11-01T00:00:00+08:00"
    assert recs[f"p1|01010001|month|{month}"].value == pytest.approx(43200.0)
    total = recs[f"p1|90000001|month|{month}"]
    assert total.value == pytest.approx(5.5)
    assert total.quality == "measured"
    va, gross = recs[f"p1|91000002|month|{month}"], recs[f"p1|91000001|month|{month}"]
    assert (va.value, va.quality, va.completeness, va.meter_codes) == (300.0, "manual", 1.0, ())
    assert gross.value == pytest.approx(920.0 * 30 / 92)
    assert gross.completeness == 1.0
    sec = recs[f"p1|92000002|month|{month}"]
    assert sec.value == pytest.approx(5.5 / 100 * 1000)
    assert sec.unit == "kgce/t"


def test_open_periods_are_not_reported() -> None:
    table = load_items("national-json")
    early = compute_records(table, _inputs(), date(2026, 11, 20), date(2026, 11, 21),
                            now=DAY + timedelta(minutes=20))
    assert {r.period for r in early} == {"15min"}
    assert len(early) == 1


def test_month_without_indicator_falls_back_to_coefficients() -> None:
    table = load_items("national-json")
    out = compute_records(table, _inputs(monthly_tce={}), date(2026, 11, 20), date(2026, 11, 21), now=NOW,
                          periods=("month",))
    total = next(r for r in out if r.data_item_code == "90000001")
    assert total.value == pytest.approx(43200 * 0.0001229 + 3000 * 0.0012143)


def test_provincial_profile_has_hourly_realtime_and_own_codes() -> None:
    table = load_items("guangdong-2013")
    out = compute_records(table, _inputs(), date(2026, 11, 20), date(2026, 11, 21), now=NOW)
    assert {r.period for r in out} == {"day", "month"}   # no hour rollups in the inputs, no 15-min items
    assert {r.data_item_code for r in out} >= {"E0100001", "Z0000001", "J0000002", "P0000002"}


def test_instrument_register_from_registry() -> None:
    entries = {e.meter_code: e for e in instrument_register(load_items("national-json"), METERS)}
    assert entries["m1"].data_item_codes == ("01010001", "90000001")
    assert entries["m1"].accuracy_class == "0.5S"
    assert entries["m1"].calibration_date == date(2026, 3, 1)
    assert entries["m3"].data_item_codes == ("01040002",)
    assert entries["m3"].metering_level == 2
    assert entries["m2"].accuracy_class is None
    assert entries["g1"].data_item_codes == ("02010001", "90000001")


def test_quality_flags_with_reasons() -> None:
    table = load_items("national-json")
    records = compute_records(table, _inputs(), date(2026, 11, 20), date(2026, 11, 21), now=NOW)
    flags = {(f.data_item_code, f.check, f.day): f for f in check_records(table, records, "Asia/Shanghai",
                                                                         date(2026, 11, 20), date(2026, 11, 21),
                                                                         now=NOW)}
    rt = flags[("01010001", "completeness", date(2026, 11, 20))]
    assert not rt.passed
    assert rt.value == pytest.approx(round(2 / 96 * 0.75, 4))
    assert rt.reason is not None
    assert "missing meter data: 94 of 96" in rt.reason
    assert "estimated share" in rt.reason
    total = flags[("90000001", "completeness", date(2026, 11, 20))]   # daily-only item: the day's completeness
    assert total.passed
    assert total.value == pytest.approx(round(282 / 288, 4))
    cons = flags[("01010001", "consistency", date(2026, 11, 1))]
    assert not cons.passed
    assert cons.reason is not None
    assert "Σ days 1440 vs month 43200" in cons.reason
    assert flags[("01010001", "alignment", date(2026, 11, 20))].passed


_ROW = st.tuples(st.sampled_from([1, 2, 3, 4]), st.integers(min_value=0, max_value=95),
                 st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1),
                 st.integers(min_value=0, max_value=2))


@given(st.lists(_ROW, max_size=40))
@settings(max_examples=100)
def test_records_are_well_formed_for_any_rollups(rows: list[tuple[int, int, float, float, int]]) -> None:
    periods = tuple(MeterPeriod(sid, "15min", _utc(DAY + timedelta(minutes=15 * slot)), energy, energy * share, n)
                    for sid, slot, energy, share, n in rows)
    table = load_items("national-json")
    out = compute_records(table, _inputs(periods=periods, declared=()), date(2026, 11, 20), date(2026, 11, 21),
                          now=NOW, periods=("15min",))
    keys = [r.record_key for r in out]
    assert len(keys) == len(set(keys))
    for r in out:
        key = parse_record_key(r.record_key)
        assert (key.period, key.period_start, key.data_item_code) == ("15min", r.period_start, r.data_item_code)
        assert 0.0 < r.completeness <= 1.0
        assert r.value >= 0.0
        assert r.quality in {"measured", "estimated"}
    assert len({r.period_start for r in out if r.data_item_code == "01010001"}) <= len({s for _, s, *_ in rows})
