"""Declared-data CSV import: validation, units, and period totals (flows pro rata, stocks as of the end)."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation._declared import affected_months, declared_totals, parse_declared_csv
from aggregation._factors import default_registry
from aggregation._periods import parse_period
from aggregation.errors import DeclaredDataError

REG = default_registry()


def test_value_added_quarter_is_spread_over_its_days() -> None:
    rows = parse_declared_csv("park_id,period,quantity,unit,source\np,2026-Q4,3000,万元,统计局季报\n",
                              "va.csv", "value-added", REG)
    assert rows[0].unit == "10^4 CNY"
    assert rows[0].period_end == date(2027, 1, 1)
    # October has 31 of the quarter's 92 days
    assert declared_totals(rows, parse_period("2026-10")).value_added_10k_cny == pytest.approx(3000 * 31 / 92)
    assert declared_totals(rows, parse_period("2026-Q4")).value_added_10k_cny == pytest.approx(3000)
    assert declared_totals(rows, parse_period("2026-09")).value_added_10k_cny is None


def test_green_power_accepts_energy_units_and_certificates_are_counted() -> None:
    text = ("park_id,period,kind,quantity,unit,source\n"
            "p,2026-10,green_power_trade,250000,kWh,交易中心结算单\n"
            "p,2026-10,green_certificates,40,cert,绿证平台\n")
    rows = parse_declared_csv(text, "g.csv", "green-certificates", REG)
    t = declared_totals(rows, parse_period("2026-10"))
    assert (t.green_trade_mwh, t.green_certificates) == (250.0, 40.0)
    assert t.sources == ("交易中心结算单", "绿证平台")


def test_areas_take_the_latest_value_valid_at_the_period_end() -> None:
    text = ("park_id,period,kind,subject,quantity,unit,source\n"
            "p,2025-01-01,roof_new_total,,10000,m2,规划局\n"
            "p,2026-06,roof_new_total,,12000,m2,规划局\n"
            "p,2026-06,roof_new_pv,,6000,m2,验收报告\n"
            "p,2026-01-01,floor_area,office,9000,m2,房产证\n")
    rows = parse_declared_csv(text, "a.csv", "areas", REG)
    oct_ = declared_totals(rows, parse_period("2026-10"))
    assert (oct_.roof_new_total_m2, oct_.roof_new_pv_m2, oct_.floor_areas_m2) == (12000, 6000, {"office": 9000})
    assert declared_totals(rows, parse_period("2026-03")).roof_new_total_m2 == 10000
    assert (("p", date(2026, 6, 1)) in affected_months(rows))


def test_a_bad_file_is_rejected_whole_with_every_problem_listed() -> None:
    text = ("park_id,period,subject,quantity,unit,source\n"
            "p,2026-10,diesel,5,t,发票\n"
            "p,2026-10,diesel,5,kg,发票\n"          # wrong unit for diesel
            "p,2026-13,diesel,5,t,发票\n"           # bad month
            "p,2026-10,diesel,-1,t,发票\n"          # negative
            "p,2026-10,coal,5,t,\n")                # no source, unknown fuel
    with pytest.raises(DeclaredDataError) as err:
        parse_declared_csv(text, "f.csv", "fuels", REG)
    msg = str(err.value)
    for line in ("line 3", "line 4", "line 5", "line 6"):
        assert line in msg
    assert "line 2" not in msg


def test_missing_columns_and_wrong_kind() -> None:
    with pytest.raises(DeclaredDataError, match="missing column"):
        parse_declared_csv("park_id,quantity\np,1\n", "x.csv", "value-added", REG)
    with pytest.raises(DeclaredDataError, match="not accepted"):
        parse_declared_csv("park_id,period,kind,quantity,source\np,2026-10,fuel,1,s\n", "x.csv", "value-added", REG)


_HEADER = "park_id,period,subject,quantity,unit,source,note"
_CELLS = st.one_of(st.text(max_size=12), st.sampled_from(["p1", "2026-10", "2026-Q4", "10^4 CNY", "万元", "1e308",
                                                          "nan", "-1", "inf", "2026-13", '"', ",", "\n", "\x00"]))


@given(body=st.lists(st.lists(_CELLS, min_size=0, max_size=9), max_size=6),
       command=st.sampled_from(["value-added", "fuels", "areas", "declared"]))
@settings(max_examples=300, deadline=None)
def test_any_declared_csv_parses_or_names_its_problem(body: list[list[str]], command: str) -> None:
    """Arbitrary rows (short, long, quoted, NaN, NUL …) either validate or raise DeclaredDataError naming
    the line; nothing else escapes the parser."""
    text = "\n".join([_HEADER, *(",".join(row) for row in body)])
    problem = None
    try:
        rows = parse_declared_csv(text, "prop.csv", command, REG)
    except DeclaredDataError as exc:
        problem, rows = str(exc), []
    assert problem is None or problem.strip()
    for row in rows:
        assert math.isfinite(row.quantity)
