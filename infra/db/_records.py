"""The park catalog's records: plain values, so that code which only describes a park (a simulator's
scenario, an edge gateway) needs no database driver."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A building, workshop, station or data centre inside a park."""

    site_id: str
    name: str | None = None
    kind: str = "building"
    floor_area_m2: float | None = None
    is_public_building: bool = False
    roof_area_m2: float | None = None  # for rooftop-PV coverage (migration 0005)


@dataclass(frozen=True, slots=True)
class ParkRecord:
    """A park and the attributes that choose its calendar and emission factors."""

    park_id: str
    name: str | None = None
    timezone: str = "Asia/Shanghai"
    province: str | None = None
    grid_region: str | None = None
