"""Record keys and the items-file loader: round trips, and every malformed input rejected with a clear error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from uplink._items import PROFILES_DIR, load_items, parse_items
from uplink._keys import PERIODS, format_record_key, parse_record_key
from uplink.errors import ItemsFileError, RecordKeyError

_ID = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
_CODE = st.from_regex(r"[A-Za-z0-9_.-]{1,32}", fullmatch=True)
_OFFSET = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


@given(_ID, _CODE, st.sampled_from(PERIODS),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)), _OFFSET)
def test_record_key_round_trip(park: str, code: str, period: str, naive: datetime, tz: timezone) -> None:
    start = naive.replace(tzinfo=tz)
    key = format_record_key(park, code, period, start)  # type: ignore[arg-type]
    parsed = parse_record_key(key)
    assert (parsed.park_id, parsed.data_item_code, parsed.period) == (park, code, period)
    assert parsed.period_start == start
    assert parsed.period_start.utcoffset() == start.utcoffset()


@given(st.text(max_size=80))
@settings(max_examples=300)
def test_parse_record_key_never_crashes(text: str) -> None:
    error: RecordKeyError | None = None
    try:
        key = parse_record_key(text)
    except RecordKeyError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith(f"record key {text!r}: ")
    else:   # what parses formats back to a key with the same parts
        again = parse_record_key(format_record_key(key.park_id, key.data_item_code, key.period, key.period_start))
        assert again == key


@pytest.mark.parametrize("bad", [
    "p|i|day", "p|i|week|2026-11-20T00:00:00+08:00", "p|i|day|2026-11-20T00:00:00", "p||day|2026-11-20T00:00+08:00",
    "p|i|day|yesterday", "p|i|day|2026-11-20T00:00:00+08:00|x", "p q|i|day|2026-11-20T00:00:00+08:00"])
def test_parse_record_key_rejects(bad: str) -> None:
    with pytest.raises(RecordKeyError):
        parse_record_key(bad)


def test_format_record_key_needs_aware_start() -> None:
    with pytest.raises(RecordKeyError, match="aware"):
        format_record_key("p", "i", "day", datetime(2026, 11, 20))
    assert format_record_key("p", "i", "day", datetime(2026, 11, 20, tzinfo=UTC)).endswith("+00:00")


@pytest.mark.parametrize("profile", ["national-json", "guangdong-2013"])
def test_shipped_profiles_load_and_mark_provenance(profile: str) -> None:
    table = load_items(profile)
    assert table.profile == profile
    assert len(table.items) >= 8
    names = {i.name_zh for i in table.items}
    assert any("综合能源消费" in n for n in names)
    assert any("工业增加值" in n for n in names)
    assert any("工业总产值" in n for n in names)
    assert any("单位产品综合能耗" in n for n in names)
    assert all(i.status.startswith(("verified: ", "assumed: ")) for i in table.items)


def _base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "national-json" / "items.yaml").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["items"][0].update(status="from the spec"), "verified: <public source>"),
    (lambda d: d["items"][0].update(carrier="plutonium"), "carrier 'plutonium'"),
    (lambda d: d["items"][1].update(code=d["items"][0]["code"]), "used twice"),
    (lambda d: d["items"][0]["source"].update(metric="banana_volume"), "unknown metric"),
    (lambda d: d["items"][0].update(periods=["week"]), "periods"),
    (lambda d: d["items"][-1]["source"].update(denominator="nope"), "ratio refers to 'nope'"),
    (lambda d: d["items"][0].update(code="a|b"), "code"),
    (lambda d: d.pop("carriers"), "carriers"),
    (lambda d: d["items"][0]["source"].update(kind="guess"), "source"),
])
def test_items_loader_names_the_problem(mutate: Callable[[dict[str, Any]], object], message: str) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(ItemsFileError) as info:
        parse_items(yaml.safe_dump(data, allow_unicode=True), path="x/items.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("x/items.yaml: ")


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_VALUE = st.recursive(_SCALAR, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                      max_leaves=12)


@given(st.one_of(st.text(max_size=200), _VALUE.map(yaml.safe_dump)))
@settings(max_examples=200)
def test_items_loader_fails_only_with_items_file_error(text: str) -> None:
    with contextlib.suppress(ItemsFileError):
        parse_items(text)


@given(st.sampled_from(["status", "carrier", "unit", "periods", "source", "code", "name_zh"]),
       _VALUE)
@settings(max_examples=150)
def test_items_loader_mutated_field(field: str, value: object) -> None:
    data = _base()
    data["items"][0][field] = value
    error: ItemsFileError | None = None
    try:
        table = parse_items(yaml.safe_dump(data, allow_unicode=True), path="items.yaml")
    except ItemsFileError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith("items.yaml: ")
    else:   # a value the model accepts is kept (a string code stays that string)
        assert table.items[0].name_zh == str(data["items"][0]["name_zh"]) or field == "name_zh"
