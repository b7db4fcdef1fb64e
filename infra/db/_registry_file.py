"""Registry files: one park, its sites and its devices, as YAML or CSV (pure: text in, text out).

``parkpulse registry import FILE``, ``parkpulse registry export`` and the API's registry import and
export all go through :func:`parse_registry` and :func:`dump_registry`, so a file written by an export
imports back to the same registry (the round trip is tested).

YAML nests the park's sites and their devices; devices outside any site sit under the park (they may
name their site with ``site:``)::

    version: 1
    park:
      park_id: binjiang
      timezone: Asia/Shanghai
      province: 江苏
      sites:
        - site_id: ws-a
          kind: workshop
          floor_area_m2: 12000
          devices:
            - {device_id: ws-a-main, kind: electricity_meter, carrier: electricity, metering_level: 2}
      devices:
        - {device_id: grid-in, kind: electricity_meter, metering_level: 1, role: park_boundary}

CSV is made to live in a spreadsheet: one row per park, site or device, in any order, with the columns of
:data:`CSV_COLUMNS` (any subset in any order; ``park_id`` is required). The ``record`` column says what a
row is (``park``, ``site`` or ``device``); left empty, a row with a ``device_id`` is a device, one with
only a ``site_id`` a site, and one with neither the park. A device row's ``site_id`` is its site. Empty
cells state nothing: the default for parks and sites, "left to the device" for device attributes.

Parsing validates everything before anything is written and reports every problem with its line number
and field (:class:`~infra.db.errors.RegistryFileError`); it never raises anything else on bad input.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ValidationError

from infra.db.errors import FileProblem, RegistryError, RegistryFileError
from schemas.registry import (
    DEVICE_FIELDS,
    PARK_FIELDS,
    SITE_FIELDS,
    DeviceEntry,
    ParkEntry,
    RegistryDocument,
    SiteEntry,
)

RegistryFormat = Literal["yaml", "csv"]
FORMATS: Final[tuple[RegistryFormat, ...]] = ("yaml", "csv")
#: The CSV columns, in the order an export writes them.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "record", "park_id", "site_id", "device_id", "name", "kind", "timezone", "province", "grid_region",
    "auto_register", "floor_area_m2", "roof_area_m2", "is_public_building", "carrier", "metering_level", "role",
    "register_max", "multiplier", "rated_power_kw", "profile",
)
#: Which columns each kind of CSV row may fill (``park_id`` on every row, ``site_id`` is a device's site).
_COLUMNS_OF: Final[dict[str, frozenset[str]]] = {
    "park": frozenset({"park_id", *PARK_FIELDS}),
    "site": frozenset({"park_id", "site_id", *SITE_FIELDS}),
    "device": frozenset({"park_id", "device_id", *DEVICE_FIELDS}),
}
_MODELS: Final[dict[str, type[BaseModel]]] = {"park": ParkEntry, "site": SiteEntry, "device": DeviceEntry}
_ID_FIELD: Final = {"park": "park_id", "site": "site_id", "device": "device_id"}
MAX_FILE_CHARS: Final = 20_000_000


@dataclass(frozen=True, slots=True)
class ParsedRegistry:
    """A validated registry file and the line of each entity (``("site", id)`` → line), for later checks."""

    document: RegistryDocument
    lines: Mapping[tuple[str, str], int]


@dataclass(slots=True)
class _Raw:
    """One park, site or device as written in the file, before validation."""

    kind: str
    line: int
    values: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)  # field → line (YAML spreads an entity over lines)
    park_named: str | None = None                        # a CSV site or device row's park_id cell
    unreadable: set[str] = field(default_factory=set)    # fields already reported (a value YAML could not read)


def registry_format(path: str | PurePath) -> RegistryFormat:
    """The format a file name implies: ``.csv``, or ``.yaml``/``.yml``."""
    suffix = PurePath(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise RegistryError(f"cannot tell the format of {str(path)!r} from its extension; name it .yaml, .yml or .csv")


def parse_registry(text: str, fmt: RegistryFormat) -> ParsedRegistry:
    """Validate a whole registry file; raises :class:`RegistryFileError` listing every problem found."""
    problems: list[FileProblem] = []
    if len(text) > MAX_FILE_CHARS:
        raise RegistryFileError([FileProblem(0, None, f"the file has {len(text):,} characters, more than "
                                                      f"{MAX_FILE_CHARS:,}; split the park's registry")])
    text = text.removeprefix("\ufeff")
    raws = _yaml_entities(text, problems) if fmt == "yaml" else _csv_entities(text, problems)
    return _validate(raws, problems, fmt)


def _validate(raws: list[_Raw], problems: list[FileProblem], fmt: RegistryFormat) -> ParsedRegistry:
    parks = [r for r in raws if r.kind == "park"]
    if not parks and not problems:
        problems.append(FileProblem(1, None, "the file names no park; it must describe exactly one park "
                                             "(a `park:` mapping in YAML, a row with record `park` in CSV)"))
    for extra in parks[1:]:
        problems.append(FileProblem(extra.line, "park_id", f"a second park (the first is on line {parks[0].line}); "
                                                           "write one file per park"))
    entries: dict[str, list[Any]] = {"park": [], "site": [], "device": []}
    lines: dict[tuple[str, str], int] = {}
    for raw in raws:
        ident = raw.values.get(_ID_FIELD[raw.kind])
        key = (raw.kind, ident.strip() if isinstance(ident, str) else repr(ident))
        if raw.kind != "park" and key in lines:
            problems.append(FileProblem(raw.line, _ID_FIELD[raw.kind], f"{raw.kind} {key[1]!r} is also on line "
                                                                       f"{lines[key]}; list each {raw.kind} once"))
            continue
        lines[key] = raw.line
        try:
            entries[raw.kind].append(_MODELS[raw.kind].model_validate(raw.values))
        except ValidationError as exc:
            problems.extend(_problems(raw, exc, fmt))
    if entries["park"]:
        park_id = entries["park"][0].park_id
        problems.extend(FileProblem(raw.line, "park_id", f"{raw.park_named!r} is not the park of this file "
                                                         f"({park_id!r}); write one file per park")
                        for raw in raws if raw.park_named not in (None, park_id))
    if problems or not entries["park"]:
        raise RegistryFileError(problems)
    document = RegistryDocument(park=entries["park"][0],  # canonical order: by id, whatever the file's order
                                sites=tuple(sorted(entries["site"], key=lambda s: s.site_id)),
                                devices=tuple(sorted(entries["device"], key=lambda d: d.device_id)))
    return ParsedRegistry(document, lines)


def _problems(raw: _Raw, exc: ValidationError, fmt: RegistryFormat) -> Iterable[FileProblem]:
    allowed = ", ".join((_ID_FIELD[raw.kind], *sorted(_COLUMNS_OF[raw.kind] - {"park_id", _ID_FIELD[raw.kind]})))
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else None
        if name in raw.unreadable:
            continue
        message = str(err["msg"])
        if err["type"] == "extra_forbidden":
            message = f"unknown field for a {raw.kind}; its fields are: {allowed}"
        elif err["type"] == "missing":
            message = f"every {raw.kind} needs its {name}"
        elif err["type"] == "string_type" and fmt == "yaml":
            message = f"expected text, got {err['input']!r}; quote it in YAML (\"...\")"
        yield FileProblem(raw.lines.get(name or "", raw.line), name, message)


# --- YAML -----------------------------------------------------------------------------------------------

class _Yaml:
    """Turns a composed YAML node tree into raw entities, with the line of every field."""

    def __init__(self, problems: list[FileProblem]) -> None:
        self.problems = problems
        self.loader = yaml.SafeLoader("")
        self.seen: set[int] = set()

    def problem(self, node: yaml.Node, fld: str | None, message: str) -> None:
        self.problems.append(FileProblem(node.start_mark.line + 1, fld, message))

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, int]] | None:
        """Key → (value node, line); None (with a problem) when ``node`` is not a mapping of text keys."""
        if id(node) in self.seen:
            self.problem(node, None, "YAML aliases (*name) are not supported; write the values out")
            return None
        self.seen.add(id(node))
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, None, f"{what} must be a mapping of `field: value` lines")
            return None
        out: dict[str, tuple[yaml.Node, int]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
                self.problem(key_node, None, f"{what}: keys must be field names")
            elif key in out:
                self.problem(key_node, key, f"{key!r} is given twice (first on line {out[key][1]}); keep one")
            else:
                out[key] = (value_node, key_node.start_mark.line + 1)
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        """The items of a list (an empty value is an empty list)."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if id(node) in self.seen:
            self.problem(node, what, "YAML aliases (*name) are not supported; write the values out")
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, what, f"{what} must be a list (lines starting with `- `)")
            return []
        self.seen.add(id(node))
        return list(node.value)

    def scalar(self, node: yaml.Node, fld: str) -> tuple[bool, Any]:
        """(ok, value) of a single value; nested mappings, lists and unknown tags are problems."""
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, fld, "expected a single value, not a list or mapping")
            return False, None
        try:
            return True, self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            self.problem(node, fld, f"cannot read this value ({str(exc).splitlines()[0][:120]}); quote it")
            return False, None

    def entity(self, kind: str, node: yaml.Node, nested: frozenset[str]) -> tuple[_Raw | None, dict[str, yaml.Node]]:
        """The raw entity of a mapping, and its nested lists (``sites``, ``devices``) as nodes."""
        items = self.mapping(node, f"a {kind}")
        if items is None:
            return None, {}
        raw = _Raw(kind, node.start_mark.line + 1, {})
        children: dict[str, yaml.Node] = {}
        for key, (value_node, line) in items.items():
            if key in nested:
                children[key] = value_node
                continue
            ok, value = self.scalar(value_node, key)
            if not ok:
                raw.unreadable.add(key)
            else:
                name = "site_id" if kind == "device" and key == "site" else key
                if name in raw.values:
                    self.problem(value_node, name, "give the device's site once (`site` or `site_id`)")
                raw.values[name] = value
                raw.lines[name] = line
        return raw, children


def _compose(text: str, problems: list[FileProblem]) -> yaml.Node | None:
    """The YAML node tree, or None with a problem when the text is not YAML or empty."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = str(exc.problem or exc).splitlines()[0][:200]
        problems.append(FileProblem(mark.line + 1 if mark else 1, None, f"not valid YAML: {reason}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(FileProblem(1, None, f"not valid YAML: {str(exc).splitlines()[0][:200]}"))
        return None
    if root is None:
        problems.append(FileProblem(1, None, "the file is empty; it must describe a park (see "
                                             "`parkpulse registry export --help` for the layout)"))
    return root


def _park_node(walker: _Yaml, root: yaml.Node) -> yaml.Node | None:
    """The ``park:`` node of the top-level mapping (``version: 1`` is the only other key allowed)."""
    top = walker.mapping(root, "the file")
    if top is None:
        return None
    for key, (node, line) in top.items():
        if key == "version":
            ok, value = walker.scalar(node, key)
            if ok and (isinstance(value, bool) or value != 1):
                walker.problems.append(FileProblem(line, "version", f"unknown version {value!r}; this ParkPulse "
                                                                    "reads 1"))
        elif key != "park":
            walker.problems.append(FileProblem(line, key, "unknown top-level key; the file has `park:` (and "
                                                          "`version: 1`)"))
    if "park" not in top:
        walker.problems.append(FileProblem(root.start_mark.line + 1, "park", "no `park:` mapping; the file must "
                                                                             "describe exactly one park"))
        return None
    return top["park"][0]


def _site_devices(walker: _Yaml, site: _Raw, node: yaml.Node) -> list[_Raw]:
    """The devices listed under a site; each belongs to it (naming another site is a problem)."""
    site_id = site.values.get("site_id")
    devices = []
    for device_node in walker.sequence(node, "devices"):
        device, _ = walker.entity("device", device_node, frozenset())
        if device is None:
            continue
        given = device.values.setdefault("site_id", site_id)
        if given != site_id:
            walker.problems.append(FileProblem(
                device.lines.get("site_id", device.line), "site_id",
                f"the device is listed under site {site_id!r} but names site {given!r}; move it or drop its `site`"))
        devices.append(device)
    return devices


def _yaml_entities(text: str, problems: list[FileProblem]) -> list[_Raw]:
    root = _compose(text, problems)
    walker = _Yaml(problems)
    park_node = _park_node(walker, root) if root is not None else None
    if park_node is None:
        return []
    park, children = walker.entity("park", park_node, frozenset({"sites", "devices"}))
    if park is None:
        return []
    raws = [park]
    for site_node in walker.sequence(children.get("sites", _NULL), "sites"):
        site, site_children = walker.entity("site", site_node, frozenset({"devices"}))
        if site is not None:
            raws.append(site)
            raws.extend(_site_devices(walker, site, site_children.get("devices", _NULL)))
    for device_node in walker.sequence(children.get("devices", _NULL), "devices"):
        device, _ = walker.entity("device", device_node, frozenset())
        if device is not None:
            raws.append(device)
    return raws


_NULL: Final = yaml.ScalarNode("tag:yaml.org,2002:null", "")


# --- CSV ------------------------------------------------------------------------------------------------

def _csv_entities(text: str, problems: list[FileProblem]) -> list[_Raw]:
    reader = csv.reader(io.StringIO(text, newline=""))
    raws: list[_Raw] = []
    header: list[str] | None = None
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = _header(row, start, problems)
                if header is None:
                    return []
                continue
            raw = _csv_row(header, row, start, problems)
            if raw is not None:
                raws.append(raw)
    except csv.Error as exc:
        problems.append(FileProblem(reader.line_num, None, f"not valid CSV ({exc}); save the sheet as CSV UTF-8"))
        return []
    if header is None:
        problems.append(FileProblem(1, None, f"the file is empty; it needs a header row ({', '.join(CSV_COLUMNS)}) "
                                             "and a park row"))
    return raws


def _header(row: list[str], line: int, problems: list[FileProblem]) -> list[str] | None:
    names = [cell.strip().lower() for cell in row]
    unknown = [n for n in names if n not in CSV_COLUMNS]
    if len(names) == 1 and ";" in names[0]:
        problems.append(FileProblem(line, None, "the header has one column holding `;`: save the sheet as "
                                                "comma-separated CSV (CSV UTF-8)"))
        return None
    if unknown:
        problems.append(FileProblem(line, None, f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are: "
                                                f"{', '.join(CSV_COLUMNS)}"))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(FileProblem(line, None, f"column(s) {', '.join(twice)} appear more than once; keep one"))
    if "park_id" not in names:
        problems.append(FileProblem(line, None, "the header has no park_id column; every file names its park"))
    return None if unknown or twice or "park_id" not in names else names


def _csv_row(header: list[str], row: list[str], line: int, problems: list[FileProblem]) -> _Raw | None:
    if len(row) > len(header):
        problems.append(FileProblem(line, None, f"the row has {len(row)} cells but the header {len(header)}; "
                                                "quote cells that hold commas"))
        return None
    cells = {name: value.strip() for name, value in zip(header, row, strict=False) if value.strip()}
    kind = cells.pop("record", "").lower() or ("device" if "device_id" in cells else "site" if "site_id" in cells
                                               else "park")
    if kind not in _COLUMNS_OF:
        problems.append(FileProblem(line, "record", f"unknown record {kind!r}; use park, site or device"))
        return None
    misplaced = sorted(set(cells) - _COLUMNS_OF[kind])
    for name in misplaced:
        problems.append(FileProblem(line, name, f"does not apply to a {kind} row; leave it empty"))
    if misplaced:
        return None
    named = cells.pop("park_id", None) if kind != "park" else None
    return _Raw(kind, line, cells, park_named=named)


# --- writing --------------------------------------------------------------------------------------------

def dump_registry(document: RegistryDocument, fmt: RegistryFormat) -> str:
    """The document as a registry file that :func:`parse_registry` reads back to an equal document."""
    return _dump_yaml(document) if fmt == "yaml" else _dump_csv(document)


def _fields(entry: BaseModel, names: Iterable[str], *, keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    values = {name: getattr(entry, name) for name in names}
    return {k: v for k, v in values.items() if v is not None or k in keep}


def registry_tree(document: RegistryDocument) -> dict[str, Any]:
    """The nested form of a YAML file (``version``, ``park`` → ``sites`` → ``devices``), empty values left out.

    The API's JSON export is this tree; JSON being YAML, it imports back like a YAML file.
    """
    site_ids = {s.site_id for s in document.sites}
    park: dict[str, Any] = _fields(document.park, ("park_id", *PARK_FIELDS))
    sites = []
    for site in document.sites:
        out = _fields(site, ("site_id", *SITE_FIELDS))
        devices = [_fields(d, ("device_id", *DEVICE_FIELDS)) for d in document.devices if d.site_id == site.site_id]
        for device in devices:
            del device["site_id"]
        if devices:
            out["devices"] = devices
        sites.append(out)
    if sites:
        park["sites"] = sites
    loose = [_fields(d, ("device_id", *DEVICE_FIELDS)) for d in document.devices if d.site_id not in site_ids]
    for device in loose:
        if "site_id" in device:
            device["site"] = device.pop("site_id")
    if loose:
        park["devices"] = loose
    return {"version": 1, "park": park}


def _dump_yaml(document: RegistryDocument) -> str:
    head = (f"# ParkPulse registry of park {document.park.park_id}: import with `parkpulse registry import FILE`.\n"
            "# Device attributes left out are left to the device's own birth message.\n")
    return head + yaml.safe_dump(registry_tree(document), allow_unicode=True, sort_keys=False, width=120)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def _dump_csv(document: RegistryDocument) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    park_id = document.park.park_id

    def row(kind: str, values: Mapping[str, Any]) -> None:
        writer.writerow([kind if c == "record" else park_id if c == "park_id" else _cell(values.get(c))
                         for c in CSV_COLUMNS])

    row("park", document.park.model_dump())
    placed: set[str] = set()
    for site in document.sites:
        row("site", site.model_dump())
        for device in document.devices:
            if device.site_id == site.site_id:
                row("device", device.model_dump())
                placed.add(device.device_id)
    for device in document.devices:
        if device.device_id not in placed:
            row("device", device.model_dump())
    return buffer.getvalue()
