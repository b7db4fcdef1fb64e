"""Import a registry file: compare it with the database, then apply it all at once (or only report).

The file states the park, the sites and the devices it names, completely: an empty park or site
attribute takes its default, an empty device attribute is handed back to the device (see the precedence
rule in :mod:`infra.db._registry`). Parks, sites and devices the file does not name are left alone;
nothing is ever deleted by an import.

Everything is checked before anything is written (the file by :func:`~infra.db._registry_file.parse_registry`,
then the device sites against the database), the whole import runs in one transaction under a per-park
lock, and ``dry_run`` computes the same report without writing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg

from infra.db._registry import read_registry, save_device, save_park, save_site
from infra.db._registry_file import ParsedRegistry
from infra.db.errors import FileProblem, RegistryFileError, RegistryNotFoundError
from schemas.registry import DEVICE_FIELDS, PARK_FIELDS, SITE_FIELDS, DeviceEntry, RegistryDocument

Entity = Literal["park", "site", "device"]
Action = Literal["created", "updated", "unchanged"]
ENTITIES: Final[tuple[Entity, ...]] = ("park", "site", "device")
ACTIONS: Final[tuple[Action, ...]] = ("created", "updated", "unchanged")


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One attribute the import changes (``None``: empty, or for a device attribute: left to the device)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class EntityChange:
    """What the import does to one park, site or device."""

    entity: Entity
    entity_id: str
    action: Action
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of an import (or what it would do, when ``dry_run``)."""

    park_id: str
    dry_run: bool
    changes: tuple[EntityChange, ...]
    devices_not_in_file: int  # registered devices of the park the file does not name (left as they are)

    def counts(self) -> dict[Entity, dict[Action, int]]:
        """Created, updated and unchanged counts per entity."""
        seen = Counter((c.entity, c.action) for c in self.changes)
        return {e: {a: seen[(e, a)] for a in ACTIONS} for e in ENTITIES}

    @property
    def changed(self) -> bool:
        """True when the import writes (or would write) anything."""
        return any(c.action != "unchanged" for c in self.changes)


def _diff(entity: Entity, entity_id: str, old: Any | None, new: Any, fields: tuple[str, ...],
          *, relabel: bool = False) -> EntityChange:
    if old is None:
        return EntityChange(entity, entity_id, "created",
                            tuple(FieldChange(f, None, getattr(new, f)) for f in fields
                                  if getattr(new, f) is not None))
    changed = tuple(FieldChange(f, getattr(old, f), getattr(new, f)) for f in fields
                    if getattr(old, f) != getattr(new, f))
    return EntityChange(entity, entity_id, "updated" if changed or relabel else "unchanged", changed)


def _current(conn: psycopg.Connection[Any], park_id: str) -> tuple[RegistryDocument | None, dict[str, str]]:
    """The park's registry (all devices, declared attributes only) and each device's ``registered_by``."""
    try:
        document = read_registry(conn, park_id, include_auto=True)
    except RegistryNotFoundError:
        return None, {}
    rows = conn.execute("SELECT device_id, registered_by FROM devices WHERE park_id = %s", (park_id,)).fetchall()
    return document, {str(d): str(by) for d, by in rows}


def _check_sites(parsed: ParsedRegistry, current: RegistryDocument | None) -> None:
    known = {s.site_id for s in parsed.document.sites}
    if current is not None:
        known |= {s.site_id for s in current.sites}
    problems = [FileProblem(parsed.lines.get(("device", d.device_id), 0), "site_id",
                            f"site {d.site_id!r} is neither in the file nor registered in park "
                            f"{parsed.document.park.park_id!r}; add it to the file's sites")
                for d in parsed.document.devices if d.site_id is not None and d.site_id not in known]
    if problems:
        raise RegistryFileError(problems)


def plan_import(conn: psycopg.Connection[Any], parsed: ParsedRegistry) -> ImportReport:
    """What importing ``parsed`` would change, without writing; raises :class:`RegistryFileError`."""
    doc = parsed.document
    park_id = doc.park.park_id
    current, registered_by = _current(conn, park_id)
    _check_sites(parsed, current)
    sites = {s.site_id: s for s in current.sites} if current else {}
    devices: dict[str, DeviceEntry] = {d.device_id: d for d in current.devices} if current else {}
    changes = [_diff("park", park_id, current.park if current else None, doc.park, PARK_FIELDS)]
    changes += [_diff("site", s.site_id, sites.get(s.site_id), s, SITE_FIELDS) for s in doc.sites]
    changes += [_diff("device", d.device_id, devices.get(d.device_id), d, DEVICE_FIELDS,
                      relabel=registered_by.get(d.device_id) == "auto") for d in doc.devices]
    named = {d.device_id for d in doc.devices}
    return ImportReport(park_id, True, tuple(changes), sum(1 for d in devices if d not in named))


def import_registry(conn: psycopg.Connection[Any], parsed: ParsedRegistry, *, dry_run: bool = False) -> ImportReport:
    """Apply a validated registry file in one transaction (or, with ``dry_run``, only report).

    Raises :class:`RegistryFileError` (nothing written) when a device names a site that is neither in
    the file nor registered.
    """
    doc = parsed.document
    with conn.transaction():
        # One import per park at a time: the plan must still hold when it is applied.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('parkpulse-registry'), hashtext(%s))", (doc.park.park_id,))
        report = plan_import(conn, parsed)
        if dry_run:
            return report
        todo = {(c.entity, c.entity_id) for c in report.changes if c.action != "unchanged"}
        park_id = doc.park.park_id
        if ("park", park_id) in todo:
            save_park(conn, park_id, doc.park.model_dump(include=set(PARK_FIELDS)))
        for site in doc.sites:
            if ("site", site.site_id) in todo:
                save_site(conn, park_id, site.site_id, site.model_dump(include=set(SITE_FIELDS)))
        for device in doc.devices:
            if ("device", device.device_id) in todo:
                save_device(conn, park_id, device.device_id, device.model_dump(include=set(DEVICE_FIELDS)))
    return ImportReport(report.park_id, False, report.changes, report.devices_not_in_file)
