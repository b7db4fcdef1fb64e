"""Database plumbing shared by the services: ordered SQL migrations and small catalog helpers."""

from parkpulse.db._catalog import ParkRecord, SiteRecord, upsert_park
from parkpulse.db._migrate import MigrationError, applied_migrations, available_migrations, migrate

__all__ = [
    "MigrationError",
    "ParkRecord",
    "SiteRecord",
    "applied_migrations",
    "available_migrations",
    "migrate",
    "upsert_park",
]
