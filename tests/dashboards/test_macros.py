"""Grafana's PostgreSQL macro expansion, golden cases with the arithmetic written out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dashboards import (
    MacroError,
    TimeRange,
    calculate_interval_ms,
    expand_macros,
    format_interval,
    interpolate_globals,
    parse_interval_s,
    render_sql,
    rfc3339_nano,
    round_interval_ms,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = TimeRange(T0, T0 + timedelta(hours=1))
EPOCH_T0 = 1767225600  # 2026-01-01T00:00:00Z: 56 years x 365 d + 14 leap days = 20454 d x 86400 s


def test_epoch_constant_is_right():
    assert EPOCH_T0 == (56 * 365 + 14) * 86_400 == int(T0.timestamp())


def test_time_filter_is_between_two_rfc3339_utc_literals():
    assert expand_macros("WHERE $__timeFilter(r.ts)", HOUR) == (
        "WHERE r.ts BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T01:00:00Z'")


def test_time_filter_converts_to_utc_and_keeps_only_significant_fraction_digits():
    shanghai = timezone(timedelta(hours=8))
    rng = TimeRange(datetime(2026, 1, 1, 8, 0, 0, 500_000, tzinfo=shanghai), datetime(2026, 1, 1, 9, tzinfo=shanghai))
    # 08:00:00.5 +08:00 = 00:00:00.5 UTC; Go's RFC3339Nano drops trailing zeros of the fraction
    assert expand_macros("$__timeFilter(ts)", rng) == "ts BETWEEN '2026-01-01T00:00:00.5Z' AND '2026-01-01T01:00:00Z'"
    assert rfc3339_nano(datetime(2026, 1, 1, 0, 0, 0, 120_000, tzinfo=UTC)) == "2026-01-01T00:00:00.12Z"


def test_time_group_alias_with_interval_on_timescaledb():
    # 15 min = 900 000 ms -> "$__interval" = "15m" -> 15 x 60 = 900 s -> "900.000s"
    sql = "SELECT $__timeGroupAlias(ts, $__interval), avg(v) FROM t GROUP BY 1"
    assert render_sql(sql, HOUR, 900_000) == (
        "SELECT time_bucket('900.000s',ts) AS \"time\", avg(v) FROM t GROUP BY 1")


def test_time_group_without_timescaledb_uses_epoch_arithmetic():
    assert expand_macros("$__timeGroup(ts, 15m) AS time", HOUR, timescaledb=False) == (
        "floor(extract(epoch from ts)/900)*900 AS time")
    # 1 d = 24 x 3600 = 86400 s; Go prints floats with %v: exponent form from 10^6 up
    assert expand_macros("$__timeGroup(ts, 1d) AS x", HOUR, timescaledb=False) == (
        "floor(extract(epoch from ts)/86400)*86400 AS x")
    # 30 d = 30 x 86400 = 2 592 000 s -> 2.592e+06
    assert expand_macros("$__timeGroup(ts, 30d) AS x", HOUR, timescaledb=False) == (
        "floor(extract(epoch from ts)/2.592e+06)*2.592e+06 AS x")
    # 500 ms = 0.5 s
    assert expand_macros("$__timeGroup(ts, 500ms) AS x", HOUR, timescaledb=False) == (
        "floor(extract(epoch from ts)/0.5)*0.5 AS x")


def test_time_group_followed_by_comma_becomes_the_alias_form():
    # Grafana's pre-5.3 compatibility: "$__timeGroup(...)," adds AS "time"; "... AS t" does not.
    assert expand_macros("SELECT $__timeGroup(ts, 5m), v", HOUR) == 'SELECT time_bucket(\'300.000s\',ts) AS "time", v'
    assert expand_macros("SELECT $__timeGroup(ts, 5m) AS t, v", HOUR) == "SELECT time_bucket('300.000s',ts) AS t, v"


def test_time_group_quoted_interval_and_fill_argument():
    assert expand_macros("$__timeGroup(ts, '1h', 0) AS t", HOUR) == "time_bucket('3600.000s',ts) AS t"
    assert expand_macros("$__timeGroup(ts, 1h, NULL) AS t", HOUR) == "time_bucket('3600.000s',ts) AS t"
    assert expand_macros("$__timeGroup(ts, 1h, previous) AS t", HOUR) == "time_bucket('3600.000s',ts) AS t"
    with pytest.raises(MacroError, match="fill value"):
        expand_macros("$__timeGroup(ts, 1h, sometimes) AS t", HOUR)
    with pytest.raises(MacroError, match="interval"):
        expand_macros("$__timeGroup(ts) AS t", HOUR)
    with pytest.raises(MacroError, match="interval"):
        expand_macros("$__timeGroup(ts, fortnight) AS t", HOUR)


def test_other_macros():
    one_hour_later = EPOCH_T0 + 3600
    assert expand_macros("$__time(ts)", HOUR) == 'ts AS "time"'
    assert expand_macros("$__timeEpoch(ts)", HOUR) == 'extract(epoch from ts) as "time"'
    assert expand_macros("$__timeFrom() .. $__timeTo()", HOUR) == "'2026-01-01T00:00:00Z' .. '2026-01-01T01:00:00Z'"
    assert expand_macros("$__unixEpochFilter(t)", HOUR) == f"t >= {EPOCH_T0} AND t <= {one_hour_later}"
    assert expand_macros("$__unixEpochNanoFilter(t)", HOUR) == (
        f"t >= {EPOCH_T0}000000000 AND t <= {one_hour_later}000000000")
    assert expand_macros("$__unixEpochNanoFrom()", HOUR) == f"{EPOCH_T0}000000000"
    assert expand_macros("$__unixEpochGroupAlias(t, 1h)", HOUR) == 'floor((t)/3600)*3600 AS "time"'
    assert expand_macros("$__unixEpochGroup(t, 1h)", HOUR) == "floor((t)/3600)*3600"


def test_unknown_macro_fails_like_grafana():
    with pytest.raises(MacroError, match="unknown macro"):
        expand_macros("SELECT $__timeFliter(ts)", HOUR)


def test_global_substitutions_come_first_and_in_order():
    # $__interval_ms before $__interval, or "…_ms" would be cut to "1m_ms"
    sql = "$__interval_ms|$__interval|$__unixEpochFrom()|$__unixEpochTo()"
    assert interpolate_globals(sql, HOUR, 90_000) == f"90000|1m|{EPOCH_T0}|{EPOCH_T0 + 3600}"


@pytest.mark.parametrize(("interval_ms", "text"), [
    (90_000, "1m"),           # 90 s truncates to one minute
    (900_000, "15m"),
    (25 * 3_600_000, "1d"),   # 25 h truncates to one day
    (7 * 86_400_000, "7d"),
    (400 * 86_400_000, "1y"),
    (500, "500ms"),
    (0, "1ms"),
])
def test_format_interval_truncates_to_one_unit(interval_ms, text):
    assert format_interval(interval_ms) == text


def test_parse_interval():
    assert parse_interval_s("1h30m") == 5400 == parse_interval_s("1.5h")
    assert parse_interval_s("2w") == 2 * 7 * 86400
    assert parse_interval_s("300ms") == pytest.approx(0.3)
    # months are calendar steps with Go's normalisation: 31 Jan + 1 month = "31 Feb" = 3 Mar -> 31 days
    assert parse_interval_s("1M", now=datetime(2026, 1, 31, tzinfo=UTC)) == 31 * 86400
    # 29 Feb 2024 + 1 year = "29 Feb 2025" = 1 Mar 2025 -> 366 days
    assert parse_interval_s("1y", now=datetime(2024, 2, 29, tzinfo=UTC)) == 366 * 86400
    with pytest.raises(ValueError, match="invalid"):
        parse_interval_s("5x")


def test_interval_ladder_and_minimum():
    six_hours = TimeRange(T0, T0 + timedelta(hours=6))
    # 6 h / 900 points = 21 600 000 / 900 = 24 000 ms -> ladder: < 25 000 -> 20 000 ms (20 s)
    assert round_interval_ms(24_000) == 20_000
    assert calculate_interval_ms(six_hours, 900) == 20_000
    assert calculate_interval_ms(six_hours, 900, "1m") == 60_000  # the panel's minimum wins
    thirty_days = TimeRange(T0, T0 + timedelta(days=30))
    # 30 d / 1000 = 2 592 000 ms -> < 2 700 000 -> 1 800 000 ms (30 m)
    assert calculate_interval_ms(thirty_days, 1000) == 1_800_000
    assert round_interval_ms(5) == 1
    assert round_interval_ms(10 ** 12) == 31_536_000_000
