"""Start, stop and report the services the tests and the demo need: Mosquitto and TimescaleDB.

:func:`up` chooses, in order: URLs from ``PARKPULSE_DATABASE_URL`` and ``PARKPULSE_MQTT_URL``; a working
Docker engine with the project's docker-compose.yml; for root on Debian without Docker, Debian's
Mosquitto and PostgreSQL 17 + TimescaleDB in a debootstrap trixie root. Everything it manages lives under
a cache dir (default ``<project>/.cache``).
"""

from parkpulse.services._cli import services_app
from parkpulse.services._compose import compose_cli
from parkpulse.services._errors import ServicesError, ServicesUnavailableError
from parkpulse.services._manager import ENV_FILE, down, status, up
from parkpulse.services._settings import ServiceEndpoints, ServicesSettings, default_cache_dir

__all__ = [
    "ENV_FILE",
    "ServiceEndpoints",
    "ServicesError",
    "ServicesSettings",
    "ServicesUnavailableError",
    "compose_cli",
    "default_cache_dir",
    "down",
    "services_app",
    "status",
    "up",
]
