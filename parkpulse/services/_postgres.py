"""PostgreSQL 17 + TimescaleDB run inside the trixie root (see :mod:`._rootfs`), one cluster per port."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path, PurePosixPath

from parkpulse.services._errors import ServicesError
from parkpulse.services._probe import port_open, postgres_ping
from parkpulse.services._rootfs import (
    PG_BIN,
    chroot_as,
    ensure_mounts,
    ensure_rootfs,
    inside,
    system_user,
)
from parkpulse.services._settings import DB_NAME, DB_PASSWORD, DB_USER, local_database_url
from parkpulse.services._system import (
    CHROOT_ENV,
    Progress,
    process_alive,
    read_pid,
    run,
    tail,
    write_if_changed,
)

__all__ = [
    "answers", "data_dir", "log_file", "others_running", "render_conf", "running_pid", "start", "status", "stop",
]

logger = logging.getLogger(__name__)

DATA_PARENT = PurePosixPath("/var/lib/parkpulse")
RUN_DIR = PurePosixPath("/run/postgresql")
_CONF_NAME = "parkpulse.conf"
_HBA = """\
# Written by parkpulse.services.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
host    all       all       ::1/128        scram-sha-256
"""
_BOOTSTRAP_SQL = f"""\
SELECT format('CREATE ROLE {DB_USER} LOGIN SUPERUSER PASSWORD %L', '{DB_PASSWORD}')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_USER}') \\gexec
SELECT 'CREATE DATABASE {DB_NAME} OWNER {DB_USER}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DB_NAME}') \\gexec
\\connect {DB_NAME}
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS timescaledb;
"""


def data_dir(port: int) -> PurePosixPath:
    """Return the data directory (inside the root) of the cluster serving ``port``."""
    return DATA_PARENT / f"pg-{port}"


def log_file(port: int) -> PurePosixPath:
    """Return the server log (inside the root) of the cluster serving ``port``."""
    return DATA_PARENT / f"pg-{port}.log"


def render_conf(port: int) -> str:
    """Return our server settings, included from the cluster's postgresql.conf."""
    return f"""\
# Written by parkpulse.services; restart PostgreSQL after changing it.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{RUN_DIR}'
max_connections = 100
shared_buffers = 512MB
work_mem = 16MB
maintenance_work_mem = 256MB
effective_cache_size = 4GB
random_page_cost = 1.1
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
timescaledb.max_background_workers = 8
max_worker_processes = 16
# The chroot has no /dev/shm of its own (see _rootfs), so dynamic shared memory uses System V.
dynamic_shared_memory_type = sysv
# Durability stays on: the ingest tests rely on committed rows surviving a crash.
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
wal_compression = on
max_wal_size = 2GB
min_wal_size = 256MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
password_encryption = scram-sha-256
timezone = 'UTC'
log_timezone = 'UTC'
lc_messages = 'C.UTF-8'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
"""


def running_pid(root: Path, port: int) -> int | None:
    """Return the postmaster pid of the cluster for ``port`` if it is alive."""
    pid = read_pid(inside(root, data_dir(port)) / "postmaster.pid")
    return pid if pid is not None and process_alive(pid, "postgres") else None


def others_running(root: Path, port: int) -> bool:
    """Tell whether a cluster for another port (another clone sharing the root) is running."""
    for pid_file in inside(root, DATA_PARENT).glob("pg-*/postmaster.pid"):
        pid = read_pid(pid_file)
        if pid_file.parent.name != f"pg-{port}" and pid is not None and process_alive(pid, "postgres"):
            return True
    return False


def _as_postgres(
    root: Path, argv: list[str | PurePosixPath], *, input_text: str | None = None, detach: bool = False
) -> str:
    return run(
        chroot_as(root, "postgres", argv), input_text=input_text, env=CHROOT_ENV, timeout=300, detach=detach
    )


def _owned_dir(path: Path, owner: tuple[int, int], mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, *owner)
    path.chmod(mode)


def _write_owned(path: Path, content: str, owner: tuple[int, int]) -> None:
    if write_if_changed(path, content, mode=0o600):
        os.chown(path, *owner)


def _configure(host_data: Path, port: int, owner: tuple[int, int]) -> None:
    """Write our settings and pg_hba.conf into a (stopped) cluster's data directory."""
    _write_owned(host_data / _CONF_NAME, render_conf(port), owner)
    _write_owned(host_data / "pg_hba.conf", _HBA, owner)
    main_conf = host_data / "postgresql.conf"
    include = f"include = '{_CONF_NAME}'"
    if include not in main_conf.read_text().splitlines():
        with main_conf.open("a") as handle:
            handle.write(f"\n{include}\n")


def _initdb(root: Path, port: int, owner: tuple[int, int], say: Progress) -> None:
    """Create the cluster in a temporary directory and rename it into place once configured."""
    final = inside(root, data_dir(port))
    building = data_dir(port).with_name(f"pg-{port}.tmp")
    shutil.rmtree(inside(root, building), ignore_errors=True)
    say(f"creating the PostgreSQL cluster {data_dir(port)} in {root}")
    _as_postgres(root, [
        PG_BIN / "initdb", "-D", building, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
        "--data-checksums", "--auth-local=peer", "--auth-host=scram-sha-256",
    ])
    _configure(inside(root, building), port, owner)
    inside(root, building).rename(final)


def answers(port: int) -> bool:
    """Tell whether our database answers on ``port`` with TimescaleDB installed.

    Needs no root (unlike reading the postmaster.pid in the postgres-owned data directory).
    """
    try:
        return postgres_ping(local_database_url(port), timeout=2) is not None
    except ServicesError as exc:
        logger.debug("database on port %d not ready: %s", port, exc)
        return False


def start(root: Path, port: int, say: Progress) -> None:
    """Make sure the TimescaleDB cluster for ``port`` runs and holds our role, database and extension.

    Builds the root, mounts, cluster and database as needed. When everything already answers it only
    checks, so a re-run takes milliseconds and changes nothing.
    """
    if answers(port):
        return
    if running_pid(root, port) is not None:
        _bootstrap(root, port, say)
        return
    ensure_rootfs(root, say)
    ensure_mounts(root)
    owner = system_user(root, "postgres")
    _owned_dir(inside(root, RUN_DIR), owner, 0o2775)
    _owned_dir(inside(root, DATA_PARENT), owner, 0o750)
    if not (inside(root, data_dir(port)) / "PG_VERSION").is_file():
        _initdb(root, port, owner, say)
    _configure(inside(root, data_dir(port)), port, owner)
    if port_open("127.0.0.1", port):
        raise ServicesError(
            f"port {port} is already used by another program; stop it or set PARKPULSE_PG_PORT"
        )
    say(f"starting PostgreSQL + TimescaleDB on 127.0.0.1:{port}")
    try:
        _as_postgres(root, [
            PG_BIN / "pg_ctl", "-D", data_dir(port), "-l", log_file(port), "-w", "-t", "120", "-s", "start",
        ], detach=True)
    except ServicesError as exc:
        server_log = tail(inside(root, log_file(port)))
        raise ServicesError(f"{exc}\nlast lines of the server log:\n{server_log}") from exc
    _bootstrap(root, port, say)


def _bootstrap(root: Path, port: int, say: Progress) -> None:
    """Create the role, database and extension if missing (idempotent), then check the login works."""
    say(f"creating role {DB_USER}, database {DB_NAME} and extension timescaledb if missing")
    _as_postgres(
        root,
        [
            PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", RUN_DIR, "-p", str(port), "-d", "postgres",
        ],
        input_text=_BOOTSTRAP_SQL,
    )
    if postgres_ping(local_database_url(port)) is None:
        raise ServicesError("the timescaledb extension is missing after CREATE EXTENSION")


def stop(root: Path, port: int) -> bool:
    """Stop the cluster for ``port`` with a fast shutdown; return True if it was running."""
    if running_pid(root, port) is None:
        return False
    _as_postgres(
        root, [PG_BIN / "pg_ctl", "-D", data_dir(port), "-m", "fast", "-w", "-t", "60", "-s", "stop"]
    )
    return True


def status(root: Path, port: int) -> str:
    """Describe the cluster as ``running (...)`` or ``stopped (...)``."""
    pid = running_pid(root, port)
    try:
        version = postgres_ping(local_database_url(port), timeout=2)
    except ServicesError as exc:
        if pid is None:
            return f"stopped (local, data {inside(root, data_dir(port))})"
        return f"stopped (local, pid {pid} does not answer: {exc})"
    return (
        f"running (local, pid {pid or '?'}, timescaledb {version}, 127.0.0.1:{port}, "
        f"log {inside(root, log_file(port))})"
    )
