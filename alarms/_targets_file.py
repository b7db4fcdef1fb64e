"""Targets import files (``parkpulse targets import FILE``): CSV or YAML, validated all-or-nothing.

CSV, one target per row (``month`` empty for the annual target)::

    park_id,indicator,variant,year,month,value,unit,source,source_kind,site,enterprise,valid_from,note
    demo-park,total_energy,calorific,2026,,1500,tce,示范园区 实施方案 2026,seed_plan,,,,
    demo-park,pue,annual,2026,,1.25,1,深圳 新建数据中心 PUE<1.25 (seed 002),provincial_allocation,dc-1,,,

``park_id`` may be left out when the command names ``--park``; ``variant``, ``month``, ``source_kind``,
``site``, ``enterprise``, ``valid_from`` and ``note`` are optional. YAML holds the same fields, with the
annual and monthly values of one quantity together and ``basis`` / ``method`` accepted for ``variant``::

    park: demo-park
    targets:
      - {indicator: total_energy, basis: calorific, year: 2026, annual: 1500, unit: tce,
         monthly: {1: 140, 2: 120}, source: 示范园区 实施方案 2026, source_kind: seed_plan}

Every problem names the row (CSV line, or YAML entry number) and the field, and says what to write.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

import yaml

from alarms._targets import ANNUAL, TargetInput, validate_target
from alarms._targets_errors import InvalidTargetError, TargetFileError

#: A targets file is a plan's worth of numbers; anything bigger is not a targets file.
MAX_TARGET_ROWS: Final = 10_000
CSV_FIELDS: Final = ("park_id", "indicator", "variant", "year", "month", "value", "unit", "source", "source_kind",
                     "site", "enterprise", "valid_from", "note")
_REQUIRED_CSV: Final = ("indicator", "year", "value", "unit", "source")
_YAML_FIELDS: Final = frozenset({"park", "park_id", "indicator", "variant", "basis", "method", "year", "annual",
                                 "monthly", "unit", "source", "source_kind", "site", "enterprise", "valid_from",
                                 "note"})


def parse_targets(text: str, name: str, park: str | None = None) -> list[TargetInput]:
    """Targets of a CSV or YAML file (chosen by ``name``'s suffix; ``.yaml``/``.yml`` is YAML, else CSV)."""
    if name.lower().endswith((".yaml", ".yml")):
        return parse_targets_yaml(text, name, park)
    return parse_targets_csv(text, name, park)


def _number(raw: object, file: str, row: int, field: str) -> float:
    if isinstance(raw, bool):
        raise TargetFileError(file, row, field, f"{raw!r} is not a number; write a plain number such as 1500")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        try:
            value = float(str(raw).strip().replace(",", ""))
        except ValueError:
            raise TargetFileError(file, row, field, f"{str(raw)[:40]!r} is not a number; write a plain number "
                                                    "such as 1500") from None
    if not math.isfinite(value):
        raise TargetFileError(file, row, field, f"{raw!r} is not a finite number; write a plain number")
    return value


def _integer(raw: object, file: str, row: int, field: str, *, lo: int, hi: int) -> int:
    value = _number(raw, file, row, field)
    if value != int(value) or not lo <= value <= hi:
        raise TargetFileError(file, row, field, f"{raw!r} is not a whole number between {lo} and {hi}")
    return int(value)


def _day(raw: object, file: str, row: int) -> date | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError:
        raise TargetFileError(file, row, "valid_from", f"{str(raw)[:40]!r} is not a date; write YYYY-MM-DD"
                              ) from None


def _text(raw: object) -> str:
    return "" if raw is None else str(raw).strip()


def _subject(site: str, enterprise: str, file: str, row: int) -> tuple[str, str]:
    if site and enterprise:
        raise TargetFileError(file, row, "site", "a target is for a site or an enterprise, not both; "
                                                 "leave one of the two empty")
    if site:
        return "site", site
    if enterprise:
        return "enterprise", enterprise
    return "park", ""


def _build(file: str, row: int, fields: Mapping[str, Any], park: str, *, month: int, value: float) -> TargetInput:
    kind, subject = _subject(_text(fields.get("site")), _text(fields.get("enterprise")), file, row)
    try:
        return validate_target(
            park_id=park, indicator=_text(fields.get("indicator")),
            variant=_text(fields.get("variant")) or None,
            year=_integer(fields.get("year"), file, row, "year", lo=1, hi=9999), month=month, value=value,
            unit=_text(fields.get("unit")), source=_text(fields.get("source")),
            source_kind=_text(fields.get("source_kind")) or "other", subject_kind=kind, subject=subject,
            valid_from=_day(fields.get("valid_from"), file, row), note=_text(fields.get("note")) or None)
    except InvalidTargetError as exc:
        raise TargetFileError(file, row, None, str(exc)) from None


def _park(raw: object, default: str | None, file: str, row: int) -> str:
    park = _text(raw) or (default or "")
    if not park:
        raise TargetFileError(file, row, "park_id", "no park; add a park_id column (YAML: park) or pass --park")
    return park


def parse_targets_csv(text: str, name: str, park: str | None = None) -> list[TargetInput]:
    """Targets of a CSV file (header row first, one target per row)."""
    if "\x00" in text:
        raise TargetFileError(name, None, None, "the file is binary, not CSV; export the targets as UTF-8 CSV")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise TargetFileError(name, 1, None, f"no header row; the first line names the columns: {','.join(CSV_FIELDS)}")
    missing = [f for f in _REQUIRED_CSV if f not in header]
    unknown = [h for h in header if h not in CSV_FIELDS]
    if missing or unknown:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(repr(u) for u in unknown)}"] if unknown else [])
        raise TargetFileError(name, 1, None, "; ".join(parts) + f"; the columns are {','.join(CSV_FIELDS)}")
    out: list[TargetInput] = []
    rows: list[int] = []
    for raw in reader:
        line = reader.line_num
        if None in raw:
            raise TargetFileError(name, line, None, "more values than columns; quote values that contain commas")
        fields = {(k or "").strip(): (v or "") for k, v in raw.items()}
        if not any(v.strip() for v in fields.values()):
            continue
        if len(out) >= MAX_TARGET_ROWS:
            raise TargetFileError(name, line, None, f"more than {MAX_TARGET_ROWS} targets; split the file")
        month_text = fields.get("month", "").strip()
        month = ANNUAL if not month_text else _integer(month_text, name, line, "month", lo=1, hi=12)
        value = _number(fields.get("value", ""), name, line, "value")
        out.append(_build(name, line, fields, _park(fields.get("park_id"), park, name, line), month=month, value=value))
        rows.append(line)
    if not out:
        raise TargetFileError(name, None, None, "no targets in the file; add one row per target under the header")
    return _unique(out, rows, name)


def parse_targets_yaml(text: str, name: str, park: str | None = None) -> list[TargetInput]:
    """Targets of a YAML file: ``targets:`` entries, each with an ``annual`` value and/or ``monthly`` values."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        raise TargetFileError(name, row, None, f"not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                                               "check the indentation and quoting") from None
    except (ValueError, TypeError, RecursionError) as exc:  # odd scalars (dates out of range …)
        raise TargetFileError(name, None, None, f"not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), list):
        raise TargetFileError(name, None, "targets", "the file needs a top-level 'targets:' list of entries")
    default_park = _text(doc.get("park")) or park
    out: list[TargetInput] = []
    rows: list[int] = []
    for index, entry in enumerate(doc["targets"], start=1):
        for target in _yaml_entry(entry, index, name, default_park):
            out.append(target)
            rows.append(index)
            if len(out) > MAX_TARGET_ROWS:
                raise TargetFileError(name, index, None, f"more than {MAX_TARGET_ROWS} targets; split the file")
    if not out:
        raise TargetFileError(name, None, "targets", "the 'targets:' list is empty")
    return _unique(out, rows, name)


def _yaml_entry(entry: object, index: int, name: str, default_park: str | None) -> list[TargetInput]:
    """The targets of one YAML entry: its annual value and each monthly value."""
    if not isinstance(entry, dict):
        raise TargetFileError(name, index, None, "each target entry is a mapping (indicator: …, year: …)")
    fields = {str(k): v for k, v in entry.items()}
    unknown = sorted(set(fields) - _YAML_FIELDS)
    if unknown:
        raise TargetFileError(name, index, unknown[0],
                              f"unknown field; the fields are {', '.join(sorted(_YAML_FIELDS))}")
    given = [k for k in ("variant", "basis", "method") if _text(fields.get(k))]
    if len(given) > 1:
        raise TargetFileError(name, index, given[1], "give one of variant, basis or method")
    if given:
        fields["variant"] = fields[given[0]]
    park = _park(fields.get("park_id") or fields.get("park"), default_park, name, index)
    values: list[tuple[int, float]] = []
    if fields.get("annual") is not None:
        values.append((ANNUAL, _number(fields["annual"], name, index, "annual")))
    monthly = fields.get("monthly")
    if monthly is not None:
        if not isinstance(monthly, dict):
            raise TargetFileError(name, index, "monthly", "write monthly targets as {1: value, 2: value, …}")
        for month_raw, value_raw in monthly.items():
            month = _integer(month_raw, name, index, "monthly", lo=1, hi=12)
            values.append((month, _number(value_raw, name, index, f"monthly.{month}")))
    if not values:
        raise TargetFileError(name, index, "annual", "no value; give 'annual: N' and/or 'monthly: {1: N, …}'")
    return [_build(name, index, fields, park, month=month, value=value) for month, value in values]


def _unique(targets: list[TargetInput], rows: list[int], name: str) -> list[TargetInput]:
    """The targets, unless two rows set the same target from the same day (which one would win is unclear)."""
    seen: dict[tuple[object, ...], int] = {}
    for target, row in zip(targets, rows, strict=True):
        key = (target.key, target.valid_from)
        if key in seen:
            raise TargetFileError(name, row, None, f"sets the same target as row {seen[key]} ({target.indicator} "
                                                   f"{target.variant} {target.key.period_label}, "
                                                   f"{target.key.subject_label}); keep one of the two")
        seen[key] = row
    return targets
