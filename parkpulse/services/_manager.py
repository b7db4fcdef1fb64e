"""``up``, ``down`` and ``status``: choose how to provide the services and remember the choice."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import psycopg

from parkpulse.services._compose import compose_status, compose_stop, compose_up, docker_engine_available
from parkpulse.services._errors import ServicesError, ServicesUnavailableError
from parkpulse.services._local import local_down, local_running, local_status, local_supported, local_up
from parkpulse.services._probe import mqtt_ping, postgres_ping
from parkpulse.services._settings import (
    ServiceEndpoints,
    ServicesSettings,
    local_database_url,
    local_mqtt_url,
)
from parkpulse.services._system import Progress, file_lock, is_debian, is_root, write_if_changed

__all__ = ["ENV_FILE", "down", "status", "up"]

logger = logging.getLogger(__name__)

#: Written by :func:`up` into the cache dir: ``PARKPULSE_DATABASE_URL=...`` and ``PARKPULSE_MQTT_URL=...``.
ENV_FILE = "services.env"
_STATE_FILE = "services.state.json"
_LOCK_FILE = "services.lock"


def _reporter(progress: Progress | None) -> Progress:
    def say(message: str) -> None:
        logger.info("%s", message)
        if progress is not None:
            progress(message)

    return say


def _read_state(cache_dir: Path) -> dict[str, str]:
    """Return what the last ``up`` recorded for ``cache_dir`` (mode and URLs), or an empty dict."""
    try:
        state = json.loads((cache_dir / _STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(key): str(value) for key, value in state.items()} if isinstance(state, dict) else {}


def _read_mode(cache_dir: Path) -> str | None:
    return _read_state(cache_dir).get("mode")


def _external(settings: ServicesSettings, cache_dir: Path) -> ServiceEndpoints | None:
    """Return the endpoints given by the environment, if both URLs are set and are not our own.

    URLs equal to the ones ``up`` recorded for this cache dir come from a sourced ``services.env``;
    they still name services we manage, so ``down`` must stop them rather than treat them as external.
    """
    if settings.database_url and settings.mqtt_url:
        endpoints = ServiceEndpoints(settings.database_url, settings.mqtt_url, mode="env")
        state = _read_state(cache_dir)
        if state.get("mode") in ("local", "docker") and all(
            state.get(key) == value for key, value in endpoints.as_env().items()
        ):
            return None
        return endpoints
    if settings.database_url or settings.mqtt_url:
        logger.warning("only one of PARKPULSE_DATABASE_URL / PARKPULSE_MQTT_URL is set; ignoring it")
    return None


def _record(cache_dir: Path, endpoints: ServiceEndpoints) -> None:
    """Remember the mode (for ``down``/``status``) and write the env file; untouched when unchanged."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{key}={shlex.quote(value)}\n" for key, value in endpoints.as_env().items())
    write_if_changed(cache_dir / ENV_FILE, lines)
    if endpoints.mode != "env":
        state = json.dumps({"mode": endpoints.mode, **endpoints.as_env()}, indent=2) + "\n"
        write_if_changed(cache_dir / _STATE_FILE, state)


def _unavailable() -> ServicesUnavailableError:
    reasons = ["`docker info` fails (no Docker engine)"]
    if not is_root():
        reasons.append("not running as root")
    if not is_debian():
        reasons.append("not Debian (no apt-get)")
    return ServicesUnavailableError(
        "cannot provide Mosquitto and TimescaleDB here (" + "; ".join(reasons) + "). Do one of:\n"
        "  - set PARKPULSE_DATABASE_URL (postgresql://..., TimescaleDB installed) and PARKPULSE_MQTT_URL "
        "(mqtt://host:port, MQTT v5) to services you run yourself;\n"
        "  - install Docker with the compose plugin and start its engine, so `docker info` succeeds;\n"
        "  - run as root on Debian, which installs Mosquitto with apt-get and TimescaleDB in a debootstrap "
        "trixie root."
    )


def _docker_up(cache_dir: Path, settings: ServicesSettings, say: Progress) -> ServiceEndpoints:
    compose_up(cache_dir, settings, say)
    endpoints = ServiceEndpoints(
        local_database_url(settings.pg_port), local_mqtt_url(settings.mqtt_port), mode="docker"
    )
    mqtt_ping(endpoints.mqtt_url)
    if postgres_ping(endpoints.database_url) is None:
        with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    return endpoints


def up(
    cache_dir: Path,
    *,
    progress: Progress | None = None,
    settings: ServicesSettings | None = None,
) -> ServiceEndpoints:
    """Make Mosquitto and TimescaleDB available and return how to reach them.

    Tries, in order: URLs from the environment (only checked), a working Docker engine with
    docker-compose.yml, and the local path for root on Debian. Idempotent and fast when everything
    already runs (a re-run changes nothing), so tests and scripts may call it freely. Also writes
    ``<cache_dir>/services.env`` for shells (``set -a; . .cache/services.env; set +a``).

    Raises:
        ServicesUnavailableError: no way to provide the services here; the message says what to install.
        ServicesError: a service failed to start or does not answer.
    """
    settings = settings or ServicesSettings()
    cache_dir = cache_dir.absolute()
    say = _reporter(progress)
    external = _external(settings, cache_dir)
    if external is not None:
        mqtt_ping(external.mqtt_url)
        postgres_ping(external.database_url)
        _record(cache_dir, external)
        return external
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / _LOCK_FILE):
        # Keep a running local setup even if a Docker engine appeared since: both want the same ports.
        if _read_mode(cache_dir) == "local" and local_running(cache_dir, settings):
            endpoints = local_up(cache_dir, settings, say)
        elif docker_engine_available():
            endpoints = _docker_up(cache_dir, settings, say)
        elif local_supported():
            endpoints = local_up(cache_dir, settings, say)
        else:
            raise _unavailable()
        _record(cache_dir, endpoints)
    return endpoints


def down(cache_dir: Path, *, settings: ServicesSettings | None = None) -> None:
    """Stop the services that :func:`up` started for ``cache_dir``; their data is kept.

    External services (both URLs set in the environment) are left alone.
    """
    settings = settings or ServicesSettings()
    cache_dir = cache_dir.absolute()
    if _external(settings, cache_dir) is not None:
        logger.info("services are external (PARKPULSE_DATABASE_URL/PARKPULSE_MQTT_URL); nothing to stop")
        return
    if not cache_dir.is_dir():
        return
    say = _reporter(None)
    with file_lock(cache_dir / _LOCK_FILE):
        if _read_mode(cache_dir) == "docker":
            compose_stop(cache_dir, settings)
        else:
            local_down(cache_dir, settings, say)
        (cache_dir / ENV_FILE).unlink(missing_ok=True)


def status(cache_dir: Path, *, settings: ServicesSettings | None = None) -> dict[str, str]:
    """Report each service (``mosquitto``, ``timescaledb``) as running, stopped or external, with detail."""
    settings = settings or ServicesSettings()
    cache_dir = cache_dir.absolute()
    external = _external(settings, cache_dir)
    if external is not None:
        report = {}
        for name, url, check in (
            ("mosquitto", external.mqtt_url, mqtt_ping),
            ("timescaledb", external.database_url, postgres_ping),
        ):
            try:
                check(url)
                report[name] = "external (answers)"
            except ServicesError as exc:
                report[name] = f"external (does not answer: {exc})"
        return report
    if _read_mode(cache_dir) == "docker":
        return compose_status(cache_dir, settings)
    return local_status(cache_dir, settings)
