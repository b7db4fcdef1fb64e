"""Where the project keeps local state (services, caches): ``<project root>/.cache``."""

from __future__ import annotations

from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) that holds ``pyproject.toml``.

    Falls back to the directory of this source tree, then the cwd, so the CLI works from anywhere in a
    checkout and from an installed package alike.
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "pyproject.toml").is_file():
        return source_root
    return here


def cache_dir() -> Path:
    """The git-ignored folder for service data and generated files."""
    return project_root() / ".cache"


def services_env_file() -> Path:
    """File written by ``parkpulse services up`` with the database and MQTT URLs."""
    return cache_dir() / "services.env"
