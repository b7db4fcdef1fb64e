"""A Debian trixie root holding PostgreSQL 17 and TimescaleDB, for hosts whose Debian has neither.

Debian 12 has no TimescaleDB package; trixie has ``postgresql-17-timescaledb``. The root is built once
with debootstrap (about a minute, ~700 MB), atomically, and may be shared between clones through
``PARKPULSE_ROOTFS_DIR``.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from parkpulse.services._errors import ServicesError
from parkpulse.services._system import (
    Progress,
    apt_install,
    debian_mirror,
    ensure_bind_mount,
    file_lock,
    remove_tree,
    run,
    unmount_under,
)

__all__ = [
    "PG_BIN",
    "SUITE",
    "chroot_as",
    "ensure_mounts",
    "ensure_rootfs",
    "inside",
    "is_complete",
    "release_mounts",
    "system_user",
]

logger = logging.getLogger(__name__)

SUITE = "trixie"
PG_MAJOR = 17
PG_BIN = PurePosixPath(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-timescaledb")
_MARKERS = (
    PG_BIN / "pg_ctl",
    PurePosixPath(f"/usr/share/postgresql/{PG_MAJOR}/extension/timescaledb.control"),
    PurePosixPath(f"/usr/lib/postgresql/{PG_MAJOR}/lib/timescaledb.so"),
)
#: Host directories the chroot needs (name, read-only): /proc, and /dev for /dev/null and /dev/urandom.
#: /dev is read-only so that a careless `rm -rf .cache` while it is mounted cannot delete the host's
#: device nodes; for the same reason the host's /dev/shm is not mounted (PostgreSQL uses System V
#: shared memory instead).
_BINDS = (("proc", False), ("dev", True))
_DEBOOTSTRAP_TIMEOUT = 1800.0


def inside(root: Path, path: PurePosixPath) -> Path:
    """Return the host path of ``path`` inside the chroot at ``root``."""
    return root / path.relative_to("/")


def is_complete(root: Path) -> bool:
    """Tell whether ``root`` holds pg_ctl and the TimescaleDB extension files (a finished build)."""
    return all(inside(root, marker).is_file() for marker in _MARKERS)


def ensure_rootfs(root: Path, say: Progress) -> None:
    """Build the trixie root at ``root`` with debootstrap unless a complete one is already there.

    The build happens in a sibling temporary directory that is renamed into place only when complete,
    so an interrupted debootstrap never leaves a half-made root behind. A lock file next to the root
    makes concurrent callers (several clones sharing one root) wait for a single build.
    """
    if is_complete(root):
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f".{root.name}.lock"):
        if is_complete(root):
            return
        for stale in root.parent.glob(f"{root.name}.tmp-*"):
            say(f"removing the unfinished build {stale}")
            remove_tree(stale)
        if root.exists():
            release_mounts(root)
            if any(root.iterdir()):
                # Builds are renamed into place only when complete, so this is not ours: never delete it.
                raise ServicesError(
                    f"{root} exists but holds no PostgreSQL {PG_MAJOR} + TimescaleDB; delete it or set "
                    "PARKPULSE_ROOTFS_DIR to another directory"
                )
            root.rmdir()
        if shutil.which("debootstrap") is None and shutil.which("debootstrap", path="/usr/sbin") is None:
            apt_install(["debootstrap"], say)
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        build = root.parent / f"{root.name}.tmp-build"
        log_path = root.parent / f"{root.name}.debootstrap.log"
        say(
            f"building a Debian {SUITE} root with PostgreSQL {PG_MAJOR} + TimescaleDB in {root} "
            f"(about a minute, log: {log_path})"
        )
        try:
            run(
                [
                    debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}",
                    SUITE, build, debian_mirror(),
                ],
                log_path=log_path,
                timeout=_DEBOOTSTRAP_TIMEOUT,
            )
        finally:
            unmount_under(build)
        if not is_complete(build):
            raise ServicesError(
                f"debootstrap finished but {build} lacks PostgreSQL/TimescaleDB; see {log_path}"
            )
        build.rename(root)
        say(f"{SUITE} root ready in {root}")


def ensure_mounts(root: Path) -> None:
    """Bind-mount the host's /proc and /dev (read-only) into the root (no-op when already mounted)."""
    for name, read_only in _BINDS:
        ensure_bind_mount(Path("/") / name, root / name, read_only=read_only)


def release_mounts(root: Path) -> None:
    """Unmount the bind mounts made by :func:`ensure_mounts`."""
    for name, _ in reversed(_BINDS):
        unmount_under(root / name)


def system_user(root: Path, name: str) -> tuple[int, int]:
    """Return ``(uid, gid)`` of ``name`` in the root's /etc/passwd (ids differ from the host's)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise ServicesError(f"user {name!r} is missing from {root}/etc/passwd")


def chroot_as(root: Path, user: str, argv: Sequence[str | PurePosixPath]) -> list[str]:
    """Return the command that runs ``argv`` as ``user`` inside the chroot at ``root``.

    PostgreSQL refuses to run as root, hence ``su`` inside the chroot.
    """
    command = shlex.join(str(part) for part in argv)
    return ["chroot", str(root), "su", user, "-s", "/bin/sh", "-c", command]
