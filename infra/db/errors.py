"""Errors of the operator's registry (parks, sites, devices and registry files).

Hierarchy::

    RegistryError                  a registry change that cannot be made (the message says what to do)
    ├── RegistryNotFoundError      the park, site or device is not registered
    ├── RegistryConflictError      it is registered already (creating it again)
    └── RegistryFileError          a registry file has problems; ``problems`` lists each with its line

:class:`infra.db.MigrationError` (a migration file is malformed or failed) lives with the migrator.
"""

from __future__ import annotations

from dataclasses import dataclass


class RegistryError(ValueError):
    """A registry change that cannot be made; the message says what to do instead."""


class RegistryNotFoundError(RegistryError):
    """The park, site or device named is not registered."""


class RegistryConflictError(RegistryError):
    """The park, site or device is registered already."""


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One problem of a registry file: where (line, field) and what is wrong, with what to do."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


def _printable(text: str) -> str:
    """``text`` with lone surrogates and control characters escaped: messages quote the file's own text,
    which may hold anything, and must still print and encode as UTF-8."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text[:2000])


class RegistryFileError(RegistryError):
    """A registry file cannot be imported; :attr:`problems` holds every problem found, in line order."""

    def __init__(self, problems: list[FileProblem]) -> None:
        """Keep every problem (sorted by line, text made printable) and say how many there are."""
        clean = [FileProblem(p.line, None if p.field is None else _printable(p.field), _printable(p.message))
                 for p in problems]
        self.problems = tuple(sorted(clean, key=lambda p: (p.line, p.field or "")))
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the registry file has {count} problem{'s' if count != 1 else ''}; nothing was "
                         f"imported. Fix them and import the file again:\n{lines}")
