"""The local path for root on Debian without Docker: Debian's Mosquitto plus TimescaleDB in a trixie root."""

from __future__ import annotations

import logging
from pathlib import Path

from parkpulse.services import _mosquitto, _postgres
from parkpulse.services._rootfs import release_mounts
from parkpulse.services._settings import (
    ServiceEndpoints,
    ServicesSettings,
    local_database_url,
    local_mqtt_url,
)
from parkpulse.services._system import Progress, is_debian, is_root

__all__ = ["local_down", "local_running", "local_status", "local_supported", "local_up", "rootfs_path"]

logger = logging.getLogger(__name__)


def local_supported() -> bool:
    """Tell whether the local path can work here: root (apt, chroot, mounts) on Debian."""
    return is_root() and is_debian()


def rootfs_path(cache_dir: Path, settings: ServicesSettings) -> Path:
    """Return the trixie root: ``PARKPULSE_ROOTFS_DIR`` if set (shared by clones), else in the cache."""
    return (settings.rootfs_dir or cache_dir / "trixie-root").absolute()


def local_running(cache_dir: Path, settings: ServicesSettings) -> bool:
    """Tell whether this cache dir's broker process lives and its database answers."""
    paths = _mosquitto.MosquittoPaths.for_cache(cache_dir)
    return _mosquitto.running_pid(paths) is not None and _postgres.answers(settings.pg_port)


def local_up(cache_dir: Path, settings: ServicesSettings, say: Progress) -> ServiceEndpoints:
    """Start (or just check) Mosquitto and PostgreSQL + TimescaleDB on the configured loopback ports."""
    _mosquitto.start(cache_dir, settings.mqtt_port, say)
    _postgres.start(rootfs_path(cache_dir, settings), settings.pg_port, say)
    return ServiceEndpoints(
        database_url=local_database_url(settings.pg_port),
        mqtt_url=local_mqtt_url(settings.mqtt_port),
        mode="local",
    )


def local_down(cache_dir: Path, settings: ServicesSettings, say: Progress) -> None:
    """Stop PostgreSQL (fast shutdown) and Mosquitto, then unmount the root's bind mounts.

    The mounts stay while a cluster of another clone sharing the root still runs.
    """
    root = rootfs_path(cache_dir, settings)
    if root.is_dir():
        if _postgres.stop(root, settings.pg_port):
            say(f"stopped PostgreSQL on 127.0.0.1:{settings.pg_port}")
        if _postgres.others_running(root, settings.pg_port):
            logger.info("another cluster still runs in %s; keeping its mounts", root)
        else:
            release_mounts(root)
    if _mosquitto.stop(cache_dir):
        say(f"stopped mosquitto on 127.0.0.1:{settings.mqtt_port}")


def local_status(cache_dir: Path, settings: ServicesSettings) -> dict[str, str]:
    """Describe the local broker and database."""
    return {
        "mosquitto": _mosquitto.status(cache_dir, settings.mqtt_port),
        "timescaledb": _postgres.status(rootfs_path(cache_dir, settings), settings.pg_port),
    }
