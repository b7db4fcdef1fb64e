"""Database plumbing shared by the services: ordered SQL migrations, the park catalog and the registry.

Names load on first use, so that importing the records (:class:`ParkRecord`, :class:`SiteRecord`) does not
need the database driver, which the edge install does not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from infra.lazy import lazy_exports

if _TYPE_CHECKING:
    from infra.db._catalog import upsert_park
    from infra.db._migrate import MigrationError, applied_migrations, available_migrations, migrate
    from infra.db._records import ParkRecord, SiteRecord
    from infra.db._registry import (
        DeviceRegistration,
        RegistryError,
        list_devices,
        list_parks,
        register_device,
        register_park,
    )

__all__ = [
    "DeviceRegistration",
    "MigrationError",
    "ParkRecord",
    "RegistryError",
    "SiteRecord",
    "applied_migrations",
    "available_migrations",
    "list_devices",
    "list_parks",
    "migrate",
    "register_device",
    "register_park",
    "upsert_park",
]

__getattr__ = lazy_exports(__name__, {
    "DeviceRegistration": "infra.db._registry",
    "MigrationError": "infra.db._migrate",
    "ParkRecord": "infra.db._records",
    "RegistryError": "infra.db._registry",
    "SiteRecord": "infra.db._records",
    "applied_migrations": "infra.db._migrate",
    "available_migrations": "infra.db._migrate",
    "list_devices": "infra.db._registry",
    "list_parks": "infra.db._registry",
    "migrate": "infra.db._migrate",
    "register_device": "infra.db._registry",
    "register_park": "infra.db._registry",
    "upsert_park": "infra.db._catalog",
})
