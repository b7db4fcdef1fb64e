"""The Docker path: ``docker compose up -d --wait mosquitto timescaledb`` with the project's compose file."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from infra.paths import project_root
from parkpulse.services._errors import ServicesError
from parkpulse.services._local import local_supported, rootfs_path
from parkpulse.services._rootfs import ensure_mounts, ensure_rootfs
from parkpulse.services._settings import ServicesSettings
from parkpulse.services._system import Progress, run, write_if_changed

__all__ = ["SERVICES", "compose_cli", "compose_status", "compose_stop", "compose_up", "docker_engine_available"]

logger = logging.getLogger(__name__)

SERVICES = ("mosquitto", "timescaledb")


def docker_engine_available() -> bool:
    """Tell whether a Docker engine answers (``docker info`` exits 0); a bare client is not enough."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info"], capture_output=True, timeout=15, check=False  # noqa: S607 - PATH lookup
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _compose_command(cache_dir: Path, settings: ServicesSettings) -> list[str]:
    """Return ``docker compose`` with the project's file and an env file carrying the chosen ports."""
    root = project_root()
    compose_file = root / "docker-compose.yml"
    if not compose_file.is_file():
        raise ServicesError(f"{compose_file} not found; run from the project checkout")
    env_file = cache_dir / "compose.env"
    write_if_changed(
        env_file, f"PARKPULSE_PG_PORT={settings.pg_port}\nPARKPULSE_MQTT_PORT={settings.mqtt_port}\n"
    )
    return [
        "docker", "compose", "--project-directory", str(root), "-f", str(compose_file),
        "--env-file", str(env_file),
    ]


def compose_up(cache_dir: Path, settings: ServicesSettings, say: Progress) -> None:
    """Start (or keep) the compose services and wait until their health checks pass."""
    say("starting mosquitto and timescaledb with docker compose")
    run([*_compose_command(cache_dir, settings), "up", "-d", "--wait", *SERVICES], timeout=900)


def compose_stop(cache_dir: Path, settings: ServicesSettings) -> None:
    """Stop the compose services, keeping their containers and volumes (data survives)."""
    run([*_compose_command(cache_dir, settings), "stop", *SERVICES], timeout=300)


def compose_status(cache_dir: Path, settings: ServicesSettings) -> dict[str, str]:
    """Describe each compose service as ``running (docker)`` or ``stopped (docker)``."""
    try:
        output = run([*_compose_command(cache_dir, settings), "ps", "--status", "running", "--services"])
    except ServicesError as exc:
        return dict.fromkeys(SERVICES, f"stopped (docker: {exc})")
    running = set(output.split())
    return {name: ("running (docker)" if name in running else "stopped (docker)") for name in SERVICES}


def _compose_v2(command: list[str]) -> bool:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv: a docker/compose binary and "version"
            [*command, "version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "version v2." in done.stdout.lower().replace("version 2.", "version v2.")


def compose_cli(cache_dir: Path, say: Progress) -> list[str] | None:
    """A Docker Compose v2 command line that can at least parse and validate the project's compose file.

    Uses ``docker compose`` or ``docker-compose`` when either is v2. On this project's local path (root on
    Debian, no Docker) it installs Debian trixie's ``docker-compose`` package into the services' trixie
    root and runs that binary on the host (it needs only libc): enough for ``docker compose config``,
    which needs no engine. Returns None when none of that is possible.
    """
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is not None and _compose_v2(command):
            return command
    if not local_supported():
        return None
    root = rootfs_path(cache_dir, ServicesSettings())
    binary = root / "usr/libexec/docker/cli-plugins/docker-compose"
    if not binary.is_file():
        ensure_rootfs(root, say)
        ensure_mounts(root)
        say("installing Debian's docker-compose into the trixie root (for `docker compose config`)")
        run(["chroot", str(root), "sh", "-c",
             "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose || "
             "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose)"],
            timeout=600)
    return [str(binary)] if binary.is_file() and _compose_v2([str(binary)]) else None
