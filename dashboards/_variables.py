"""Template-variable interpolation as the Grafana front end does it for SQL datasources (a pure function).

Before a panel query leaves the browser, ``templateSrv.replace(rawSql, scopedVars, interpolateVariable)``
replaces ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]``. With no explicit format the SQL datasource's
``interpolateVariable`` decides: a single value of a variable that is neither multi-value nor has "All" is
inserted **raw** (so queries write ``'$park'``); multi-value or "All" values are quoted SQL literals joined by
``,`` (so queries write ``IN ($building)``). "All" without a custom ``allValue`` means every option's value;
a custom ``allValue`` is inserted as is. References to unknown variables are left untouched (Grafana's
behaviour) — :func:`referenced_variables` lets validation catch them instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dashboards.errors import InterpolationError

ALL: Final = "$__all"
# templateSrv's variableRegex; JavaScript's \w is ASCII-only.
_VARIABLE_RE: Final = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII)


@dataclass(frozen=True, slots=True)
class VariableState:
    """A template variable as the browser holds it: its current selection and its options' values."""

    name: str
    current: str | tuple[str, ...]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: tuple[str, ...] = field(default_factory=tuple)

    def selected(self) -> str | tuple[str, ...]:
        """The value to format: the selection, or every option when "All" is selected."""
        return self.options if self.is_all else self.current

    @property
    def is_all(self) -> bool:
        """True when "All" is selected."""
        return self.current in (ALL, (ALL,))


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_default(value: str | tuple[str, ...], multi: bool, include_all: bool) -> str:
    """The SQL datasource's ``interpolateVariable``."""
    if isinstance(value, str):
        return _sql_literal(value) if multi or include_all else value
    return ",".join(_sql_literal(v) for v in value)


def _format(value: str | tuple[str, ...], fmt: str, name: str) -> str:
    values = (value,) if isinstance(value, str) else value
    match fmt:
        case "raw" | "csv":
            return ",".join(values)
        case "pipe":
            return "|".join(values)
        case "sqlstring":
            return ",".join(_sql_literal(v) for v in values)
        case "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        case "doublequote":
            return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
        case _:
            raise InterpolationError(name, f"unsupported format {fmt!r}")


def interpolate(text: str, variables: Mapping[str, VariableState], scoped: Mapping[str, str] | None = None) -> str:
    """Replace variable references in ``text`` like Grafana's front end does for a SQL datasource.

    ``scoped`` holds the built-ins the browser adds per query (``__interval``, ``__interval_ms``, ``__from``,
    ``__to``); they are formatted like single values. Unknown names stay as written.
    """
    scoped = scoped or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in scoped:
            builtin = scoped[name]
            return _format(builtin, fmt, name) if fmt else builtin
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        if variable.is_all and variable.all_value is not None:
            return interpolate(variable.all_value, variables, scoped)
        value = variable.selected()
        if fmt:
            return _format(value, fmt, name)
        return _sql_default(value, variable.multi, variable.include_all)

    return _VARIABLE_RE.sub(replace, text)


def referenced_variables(text: str) -> set[str]:
    """Names of every variable ``text`` refers to (built-ins such as ``__interval`` included)."""
    return {m.group(1) or m.group(2) or m.group(4) for m in _VARIABLE_RE.finditer(text)}


def state_from_rows(name: str, rows: Sequence[tuple[object, ...]], columns: Sequence[str], *, multi: bool,
                    include_all: bool, all_value: str | None = None, current: str | None = None) -> VariableState:
    """A :class:`VariableState` from a variable query's result, the way Grafana reads it.

    The value column is ``__value`` when present, else the first column. ``current`` defaults to "All"
    when the variable has it, else to the first option (Grafana's choice on first load).
    """
    index = columns.index("__value") if "__value" in columns else 0
    options = tuple(str(row[index]) for row in rows)
    if current is None:
        if include_all:
            current = ALL
        elif options:
            current = options[0]
        else:
            raise InterpolationError(name, "the variable query returned no options")
    selection: str | tuple[str, ...] = (current,) if multi and current != ALL else current
    return VariableState(name, selection, multi=multi, include_all=include_all, all_value=all_value,
                         options=options)
