"""Database plumbing shared by the services: ordered SQL migrations, the park catalog and the registry.

Names load on first use, so that importing the records (:class:`ParkRecord`, :class:`SiteRecord`) or the
registry file format does not need the database driver, which the edge install does not have.
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
        WriteMode,
        get_device,
        get_park,
        get_site,
        list_devices,
        list_parks,
        list_sites,
        read_registry,
        register_device,
        register_park,
        save_device,
        save_park,
        save_site,
    )
    from infra.db._registry_file import (
        CSV_COLUMNS,
        ParsedRegistry,
        RegistryFormat,
        dump_registry,
        parse_registry,
        registry_format,
        registry_tree,
    )
    from infra.db._registry_import import EntityChange, FieldChange, ImportReport, import_registry, plan_import
    from infra.db.errors import (
        FileProblem,
        RegistryConflictError,
        RegistryError,
        RegistryFileError,
        RegistryNotFoundError,
    )

__all__ = [
    "CSV_COLUMNS",
    "DeviceRegistration",
    "EntityChange",
    "FieldChange",
    "FileProblem",
    "ImportReport",
    "MigrationError",
    "ParkRecord",
    "ParsedRegistry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryFileError",
    "RegistryFormat",
    "RegistryNotFoundError",
    "SiteRecord",
    "WriteMode",
    "applied_migrations",
    "available_migrations",
    "dump_registry",
    "get_device",
    "get_park",
    "get_site",
    "import_registry",
    "list_devices",
    "list_parks",
    "list_sites",
    "migrate",
    "parse_registry",
    "plan_import",
    "read_registry",
    "register_device",
    "register_park",
    "registry_format",
    "registry_tree",
    "save_device",
    "save_park",
    "save_site",
    "upsert_park",
]

_REGISTRY = "infra.db._registry"
_FILE = "infra.db._registry_file"
_IMPORT = "infra.db._registry_import"
_ERRORS = "infra.db.errors"
__getattr__ = lazy_exports(__name__, {
    "CSV_COLUMNS": _FILE,
    "DeviceRegistration": _REGISTRY,
    "EntityChange": _IMPORT,
    "FieldChange": _IMPORT,
    "FileProblem": _ERRORS,
    "ImportReport": _IMPORT,
    "MigrationError": "infra.db._migrate",
    "ParkRecord": "infra.db._records",
    "ParsedRegistry": _FILE,
    "RegistryConflictError": _ERRORS,
    "RegistryError": _ERRORS,
    "RegistryFileError": _ERRORS,
    "RegistryFormat": _FILE,
    "RegistryNotFoundError": _ERRORS,
    "SiteRecord": "infra.db._records",
    "WriteMode": _REGISTRY,
    "applied_migrations": "infra.db._migrate",
    "available_migrations": "infra.db._migrate",
    "dump_registry": _FILE,
    "get_device": _REGISTRY,
    "get_park": _REGISTRY,
    "get_site": _REGISTRY,
    "import_registry": _IMPORT,
    "list_devices": _REGISTRY,
    "list_parks": _REGISTRY,
    "list_sites": _REGISTRY,
    "migrate": "infra.db._migrate",
    "parse_registry": _FILE,
    "plan_import": _IMPORT,
    "read_registry": _REGISTRY,
    "register_device": _REGISTRY,
    "register_park": _REGISTRY,
    "registry_format": _FILE,
    "registry_tree": _FILE,
    "save_device": _REGISTRY,
    "save_park": _REGISTRY,
    "save_site": _REGISTRY,
    "upsert_park": "infra.db._catalog",
})
