"""Database plumbing shared by the services: ordered SQL migrations and small catalog helpers."""

from parkpulse.db._catalog import ParkRecord, SiteRecord, upsert_park
from parkpulse.db._migrate import MigrationError, applied_migrations, available_migrations, migrate
from parkpulse.db._registry import (
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
