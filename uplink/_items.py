"""A profile's data-item table (``schemas/uplink_profiles/<profile>/items.yaml``): loader and model.

The mapping from ParkPulse data to a platform's data items is data, versioned per profile: the item codes,
their carrier / use / process codes, units, periods, and the *source rule* saying how each value is computed:

* ``metered``: the sum of a metric over the park's meters bound by level / role (e.g. level-1 import of
  electricity), from interval energy (15 min) or the meter rollups (hour, day, month);
* ``total_energy``: 综合能源消费总量 in tce; the month from the published indicator (``total_energy`` at the
  given basis), shorter periods from the metered carriers times the file's coefficients;
* ``declared``: manual entry from the declared-data import (value added, gross output, product output);
* ``ratio``: one item divided by another (单位产品综合能耗 = total energy ÷ output), month only.

Every item and code says where it comes from: ``verified: <public source>`` or ``assumed: <why>``. Loading
is pure (text in, model out) and fails with :class:`ItemsFileError` naming the entry and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.metrics import METRICS
from schemas.uplink_record import Period
from uplink.errors import ItemsFileError

PROFILES_DIR: Final = Path(__file__).resolve().parent.parent / "schemas" / "uplink_profiles"
_PROVENANCE: Final = re.compile(r"^(verified|assumed): \S.*", re.S)
_CODE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def _check_provenance(value: str) -> str:
    if not _PROVENANCE.match(value):
        raise ValueError("must start with 'verified: <public source>' or 'assumed: <why>'")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeEntry(_Model):
    """One carrier, use or process code of the profile."""

    code: str
    name_zh: str
    status: str

    _status = field_validator("status")(_check_provenance)


class MeteredSource(_Model):
    """Sum of ``metric`` over the park's meters at ``level`` (any level when None), filtered by role."""

    kind: Literal["metered"]
    metric: str
    level: Annotated[int, Field(ge=1, le=3)] | None = None
    roles: tuple[str, ...] = ()          # only meters with one of these roles (empty: any role)
    exclude_roles: tuple[str, ...] = ()
    scale: Annotated[float, Field(gt=0)] = 1.0   # canonical unit -> the item's unit (kWh -> 10^4 kWh: 1e-4)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; see `parkpulse schema metrics` for the registry")
        return value


class TotalEnergySource(_Model):
    """综合能源消费总量: month from the published indicator, shorter periods from metered carriers."""

    kind: Literal["total_energy"]
    basis: Literal["calorific", "coal_equivalent"] = "calorific"
    level: Annotated[int, Field(ge=1, le=3)] = 1
    tce_per_unit: dict[str, Annotated[float, Field(gt=0)]]    # metric -> tce per canonical unit

    @field_validator("tce_per_unit")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown or not value:
            raise ValueError(f"needs at least one metric, and only registered ones (unknown: {unknown})")
        return value


class DeclaredSource(_Model):
    """Manual entry: the declared-data rows of ``declared_kind`` (optionally one subject), pro rata by days."""

    kind: Literal["declared"]
    declared_kind: str
    subject: str | None = None
    scale: Annotated[float, Field(gt=0)] = 1.0


class RatioSource(_Model):
    """``numerator`` item ÷ ``denominator`` item of the same period (month)."""

    kind: Literal["ratio"]
    numerator: str
    denominator: str
    scale: Annotated[float, Field(gt=0)] = 1.0


Source = Annotated[MeteredSource | TotalEnergySource | DeclaredSource | RatioSource, Field(discriminator="kind")]


class DataItem(_Model):
    """One data item of the profile (数据项) and how ParkPulse computes it."""

    code: str
    name_zh: str
    carrier: str
    use: str
    process: str
    unit: str
    periods: tuple[Period, ...]
    source: Source
    status: str

    _status = field_validator("status")(_check_provenance)

    @field_validator("code")
    @classmethod
    def _code_shape(cls, value: str) -> str:
        if not _CODE.match(value):
            raise ValueError("1-32 characters of A-Z a-z 0-9 _ . -")
        return value

    @field_validator("periods")
    @classmethod
    def _some_periods(cls, value: tuple[Period, ...]) -> tuple[Period, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list each period once, at least one")
        return value

    @property
    def manual(self) -> bool:
        """True for manually entered (declared) items."""
        return self.source.kind == "declared"


class ItemTable(_Model):
    """The profile's item table: codes, items and thresholds."""

    profile: str
    version: str
    estimated_share_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0  # above this share: "estimated"
    provenance: dict[str, str] = {}
    carriers: dict[str, CodeEntry]
    uses: dict[str, CodeEntry]
    processes: dict[str, CodeEntry]
    items: tuple[DataItem, ...]

    @field_validator("provenance")
    @classmethod
    def _provenance(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            _check_provenance(text)
        return value

    @model_validator(mode="after")
    def _references(self) -> ItemTable:
        codes = [i.code for i in self.items]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"item codes used twice: {dupes}")
        by_code = {i.code: i for i in self.items}
        for item in self.items:
            for what, key, table in (("carrier", item.carrier, self.carriers), ("use", item.use, self.uses),
                                     ("process", item.process, self.processes)):
                if key not in table:
                    raise ValueError(f"item {item.code}: {what} {key!r} is not in the file's {what} codes "
                                     f"({sorted(table)})")
            src = item.source
            if isinstance(src, RatioSource):
                for ref in (src.numerator, src.denominator):
                    if ref not in by_code or ref == item.code:
                        raise ValueError(f"item {item.code}: ratio refers to {ref!r}, not another item of the file")
                    missing = set(item.periods) - set(by_code[ref].periods)
                    if missing:
                        raise ValueError(f"item {item.code}: {ref} has no {sorted(missing)} values to divide")
        return self

    def item(self, code: str) -> DataItem:
        """The item with ``code`` (KeyError when the profile has none)."""
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(code)


def parse_items(text: str, *, path: str = "items.yaml") -> ItemTable:
    """Validate an items file's text; raises :class:`ItemsFileError` with the first problem's location."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ItemsFileError(path, "YAML", str(exc).replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ItemsFileError(path, "top level", "expected a mapping with profile, version, carriers, uses, "
                             "processes and items")
    try:
        return ItemTable.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        items = data.get("items")
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int) and isinstance(items, list) \
                and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            where = f"item {items[loc[1]].get('code', loc[1])!r} ({where})"
        raise ItemsFileError(path, where, f"{err['msg']} ({exc.error_count()} problem(s) in all)") from None


def load_items(profile: str, *, directory: Path | None = None) -> ItemTable:
    """The items table of ``profile`` from ``schemas/uplink_profiles/<profile>/items.yaml`` (or ``directory``)."""
    path = (directory or PROFILES_DIR) / profile / "items.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        known = sorted(p.parent.name for p in (directory or PROFILES_DIR).glob("*/items.yaml"))
        raise ItemsFileError(str(path), "file", f"cannot read it ({exc.strerror}); profiles with items: "
                             f"{known}") from None
    table = parse_items(text, path=str(path))
    if table.profile != profile:
        raise ItemsFileError(str(path), "profile", f"says {table.profile!r}, but lives in folder {profile!r}")
    return table
