"""Mosquitto from Debian's packages, run as a daemon with its config, data and log under the cache dir."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from parkpulse.services._errors import ServicesError
from parkpulse.services._probe import mqtt_ping, port_open
from parkpulse.services._settings import local_mqtt_url
from parkpulse.services._system import (
    Progress,
    apt_install,
    process_alive,
    read_pid,
    run,
    tail,
    wait_until,
    write_if_changed,
)

__all__ = ["MosquittoPaths", "render_config", "running_pid", "start", "status", "stop"]

logger = logging.getLogger(__name__)

#: Large enough for the ingest test's 1 MB garbage payload, which must reach ingest to be quarantined.
MAX_PACKET_SIZE = 8 * 1024 * 1024
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class MosquittoPaths:
    """Files of the broker under ``<cache_dir>/mosquitto``."""

    base: Path

    @classmethod
    def for_cache(cls, cache_dir: Path) -> MosquittoPaths:
        """Return the layout used for ``cache_dir``."""
        return cls(cache_dir / "mosquitto")

    @property
    def conf(self) -> Path:
        """The broker configuration we write."""
        return self.base / "mosquitto.conf"

    @property
    def pid(self) -> Path:
        """The pid file the daemon writes."""
        return self.base / "mosquitto.pid"

    @property
    def log(self) -> Path:
        """The broker log."""
        return self.base / "mosquitto.log"

    @property
    def data(self) -> Path:
        """Where persistent sessions and retained messages are saved."""
        return self.base / "data"


def render_config(paths: MosquittoPaths, port: int, user: str) -> str:
    """Return the broker configuration: loopback-only MQTT listener, persistence, large packets.

    Persistence is tuned for ingest's persistent sessions surviving a broker restart, kill -9 included
    (autosave every 2 s, see the comment in the config and deploy/mosquitto/parkpulse.conf).
    """
    return f"""\
# Written by parkpulse.services on every `up`; local edits are overwritten.
pid_file {paths.pid}
user {user}
per_listener_settings false

listener {port} 127.0.0.1
protocol mqtt
allow_anonymous true
set_tcp_nodelay true
max_packet_size {MAX_PACKET_SIZE}

# Persistent sessions keep an unlimited queue, so nothing is dropped while an ingest worker restarts.
max_inflight_messages 100
max_queued_messages 0
max_queued_bytes 0
persistent_client_expiration 7d

# Snapshot persistence, as in deploy/mosquitto/parkpulse.conf (the reasoning and the cost are there):
# a full save every 2 s (time-based; "last + 1 < now" in whole seconds), so a kill -9 loses at most
# about 2 s of new sessions, subscriptions and queued QoS 1 messages; a clean stop loses nothing.
persistence true
persistence_location {paths.data}/
persistence_file mosquitto.db
autosave_on_changes false
autosave_interval 1

log_dest file {paths.log}
log_type error
log_type warning
log_type notice
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""


def _binary(say: Progress) -> str:
    """Return the mosquitto executable, installing Debian's package if it is missing."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if found is None:
        apt_install(["mosquitto", "mosquitto-clients"], say)
        found = shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    if found is None:
        raise ServicesError("mosquitto is still missing after installing Debian's package")
    return found


def _reachable_by_others(path: Path) -> bool:
    """Tell whether every directory above ``path`` lets other users through (mode o+x)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.resolve().parents)


def _run_as(paths: MosquittoPaths) -> str:
    """Choose the user the broker drops to and give it the directories it writes.

    Mosquitto started as root switches to the ``mosquitto`` user after reading its config. That user
    must be able to reach and write the data and log; if the cache dir is not reachable (for example
    under a private home directory) the broker stays root instead of failing to save its data.
    """
    try:
        account = pwd.getpwnam("mosquitto")
    except KeyError:
        return "root"
    if os.geteuid() != 0 or not _reachable_by_others(paths.base):
        logger.warning("%s is not reachable by user mosquitto; the broker keeps running as root", paths.base)
        return "root"
    for item in (paths.base, paths.data, *paths.data.iterdir(), paths.log):
        if item.exists() and (item.stat().st_uid, item.stat().st_gid) != (account.pw_uid, account.pw_gid):
            os.chown(item, account.pw_uid, account.pw_gid)
    return "mosquitto"


def running_pid(paths: MosquittoPaths) -> int | None:
    """Return the pid of our broker if its pid file names a live mosquitto process."""
    pid = read_pid(paths.pid)
    return pid if pid is not None and process_alive(pid, "mosquitto") else None


def start(cache_dir: Path, port: int, say: Progress) -> int:
    """Start the broker on 127.0.0.1:``port`` unless it already runs with the same config; return its pid.

    Idempotent: a running broker whose config is unchanged is left alone, so a re-run changes nothing.
    """
    paths = MosquittoPaths.for_cache(cache_dir)
    pid = running_pid(paths)
    unchanged = paths.conf.is_file() and paths.conf.read_text() == render_config(
        paths, port, _config_user(paths) or "root"
    )
    if pid is not None and unchanged and wait_until(lambda: port_open("127.0.0.1", port), 2.0):
        logger.debug("mosquitto already running (pid %d)", pid)
        return pid
    if pid is not None:
        say("mosquitto runs with another configuration: restarting it")
        stop(cache_dir)
    if port_open("127.0.0.1", port):
        raise ServicesError(
            f"port {port} is already used by another program; stop it or set PARKPULSE_MQTT_PORT"
        )
    binary = _binary(say)
    paths.data.mkdir(parents=True, exist_ok=True)
    user = _run_as(paths)
    write_if_changed(paths.conf, render_config(paths, port, user))
    paths.pid.unlink(missing_ok=True)
    say(f"starting mosquitto on 127.0.0.1:{port}")
    run([binary, "-c", paths.conf, "-d"], log_path=paths.base / "mosquitto.start.log", timeout=30, detach=True)
    started = wait_until(
        lambda: running_pid(paths) is not None and port_open("127.0.0.1", port), _START_TIMEOUT
    )
    new_pid = running_pid(paths)
    if not started or new_pid is None:
        raise ServicesError(f"mosquitto did not start; last lines of {paths.log}:\n{tail(paths.log)}")
    mqtt_ping(local_mqtt_url(port))
    return new_pid


def _config_user(paths: MosquittoPaths) -> str | None:
    """Return the ``user`` line of the config we last wrote, if any."""
    try:
        lines = paths.conf.read_text().splitlines()
    except OSError:
        return None
    return next((line.split()[1] for line in lines if line.startswith("user ")), None)


def stop(cache_dir: Path) -> bool:
    """Stop our broker (SIGTERM, then SIGKILL after 10 s); return True if one was running."""
    paths = MosquittoPaths.for_cache(cache_dir)
    pid = running_pid(paths)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not process_alive(pid, "mosquitto"), _STOP_TIMEOUT):
        logger.warning("mosquitto (pid %d) ignored SIGTERM, killing it", pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not process_alive(pid, "mosquitto"), _STOP_TIMEOUT)
    paths.pid.unlink(missing_ok=True)
    return True


def status(cache_dir: Path, port: int) -> str:
    """Describe the broker as ``running (...)`` or ``stopped (...)``."""
    paths = MosquittoPaths.for_cache(cache_dir)
    pid = running_pid(paths)
    if pid is None:
        return "stopped (local)"
    try:
        mqtt_ping(local_mqtt_url(port), timeout=1.0)
    except ServicesError as exc:
        return f"stopped (local, pid {pid} does not answer: {exc})"
    return f"running (local, pid {pid}, {local_mqtt_url(port)}, log {paths.log})"
