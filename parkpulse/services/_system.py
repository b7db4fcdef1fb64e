"""Small host helpers: running commands, apt, mounts, locks, pid files and atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from parkpulse.services._errors import ServicesError, ServicesUnavailableError

__all__ = [
    "CHROOT_ENV",
    "Progress",
    "apt_install",
    "debian_mirror",
    "ensure_bind_mount",
    "file_lock",
    "is_debian",
    "is_root",
    "mounts_under",
    "process_alive",
    "read_pid",
    "remove_tree",
    "run",
    "tail",
    "unmount_under",
    "wait_until",
    "write_if_changed",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: Environment for commands run inside the chroot: nothing from the host leaks in (locale, PATH).
CHROOT_ENV: Mapping[str, str] = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}
_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    input_text: str | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    detach: bool = False,
) -> str:
    """Run ``cmd`` and return its stdout; raise :class:`ServicesError` with the output tail on failure.

    With ``log_path`` the output goes to that file instead of a pipe, for long commands and for commands
    that leave daemons behind (a daemon holding our pipe would block us until it exits). ``detach``
    starts a new session, so a daemon started here survives Ctrl-C in the terminal that ran ``up``;
    other commands stay in our session and are interrupted with us.
    """
    args = [os.fspath(part) for part in cmd]
    logger.debug("running %s", args)
    try:
        if log_path is None:
            done = subprocess.run(  # noqa: S603 - argument vector, no shell
                args, input=input_text, capture_output=True, text=True, timeout=timeout,
                env=env, start_new_session=detach, check=False,
            )
            output, errors = done.stdout, done.stderr
        else:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("w") as log:
                done = subprocess.run(  # noqa: S603 - argument vector, no shell
                    args, input=input_text, stdout=log, stderr=subprocess.STDOUT, text=True,
                    timeout=timeout, env=env, start_new_session=detach, check=False,
                )
            output, errors = "", tail(log_path)
    except FileNotFoundError as exc:
        raise ServicesError(f"command not found: {args[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ServicesError(f"{args[0]} did not finish within {timeout:.0f} s: {args}") from exc
    if done.returncode != 0:
        detail = (errors or output).strip()[-2000:]
        raise ServicesError(f"{' '.join(args)} failed with exit code {done.returncode}:\n{detail}")
    return output


def tail(path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a log file, or an empty string if it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def is_root() -> bool:
    """Tell whether this process runs as root (needed for apt, chroot and mounts)."""
    return os.geteuid() == 0


def is_debian() -> bool:
    """Tell whether the host is Debian (or a derivative with apt and debootstrap)."""
    return Path("/etc/debian_version").is_file() and shutil.which("apt-get") is not None


@functools.cache
def _apt_update() -> None:
    """Refresh the package lists once per process, before the first install."""
    run(["apt-get", "update", "-q"], timeout=600)


def apt_install(packages: Sequence[str], say: Progress) -> None:
    """Install Debian packages non-interactively (runs ``apt-get update`` once first)."""
    say(f"installing {' '.join(packages)} from Debian's packages")
    _apt_update()
    # `env` sets DEBIAN_FRONTEND without copying this process's environment by hand.
    run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *packages], timeout=900)


def debian_mirror(sources: Sequence[Path] = _SOURCES) -> str:
    """Return the Debian mirror this machine's apt uses (first ``URIs:`` of deb822, else ``deb`` line).

    Read at run time so that no mirror host is ever written into the project.
    """
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        deb822 = re.search(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE)
        if deb822:
            return deb822.group(1)
        one_line = re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.MULTILINE)
        if one_line:
            return one_line.group(1)
    raise ServicesUnavailableError(
        f"no Debian mirror found in {', '.join(map(str, sources))}; configure apt first"
    )


def _mount_points() -> list[str]:
    """Return the mount points of this mount namespace, with /proc/mounts' octal escapes decoded."""
    points = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))
    return points


def mounts_under(root: Path) -> list[str]:
    """Return the mount points at or below ``root``, deepest first (the order to unmount them)."""
    prefix = str(root.resolve())
    found = {p for p in _mount_points() if p == prefix or p.startswith(prefix + "/")}
    return sorted(found, key=len, reverse=True)


def ensure_bind_mount(source: Path, target: Path, *, read_only: bool = False) -> bool:
    """Bind-mount ``source`` on ``target`` unless already mounted; return True if a mount was made.

    The new mount is made private so that mounts below it never propagate back to the host. A
    read-only bind still lets programs write to device nodes (/dev/null) but not delete them.
    """
    if str(target.resolve()) in _mount_points():
        return False
    target.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", source, target])
    run(["mount", "--make-private", target])
    if read_only:
        run(["mount", "-o", "remount,bind,ro", target])
    return True


def unmount_under(root: Path) -> None:
    """Unmount everything at or below ``root``, deepest first, lazily if a mount is still busy."""
    for point in mounts_under(root):
        try:
            run(["umount", point])
        except ServicesError:
            logger.warning("%s is busy, detaching it lazily", point)
            run(["umount", "--lazy", point])


def remove_tree(path: Path) -> None:
    """Delete a directory tree after unmounting what is mounted in it; refuse if a mount remains."""
    if not path.exists():
        return
    unmount_under(path)
    if mounts_under(path):
        raise ServicesError(f"refusing to delete {path}: {mounts_under(path)} still mounted")
    shutil.rmtree(path)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` so concurrent ``up``/``down`` calls take turns.

    A lock file this user may not write (another user started the services) is locked read-only.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = path.open("a")
    except PermissionError:
        handle = path.open()
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pid(path: Path) -> int | None:
    """Return the pid on the first line of a pid file, or None if missing or malformed."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def process_alive(pid: int, name: str) -> bool:
    """Tell whether ``pid`` is a live (non-zombie) process whose command name is ``name``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, _, rest = stat.partition("(")[2].rpartition(")")
    return comm == name and not rest.strip().startswith("Z")


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> bool:
    """Atomically write ``content`` to ``path`` unless it already holds it; return True if written."""
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(content)
    temporary.chmod(mode)
    temporary.replace(path)
    return True
