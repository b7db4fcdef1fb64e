"""The asset registry over HTTP: a park, its sites and devices; export and bulk import of a registry file.

Reads need the key's ``read`` scope, changes the ``write`` scope, and the park must be in the key's scope
either way. The key's scope may name a park that is not registered yet: ``PUT /v1/parks/{park_id}`` (or an
import of that park's file) then creates it, so an operator holding a fresh write key can bootstrap an
empty database through the API alone (``parkpulse api-keys create NAME --park P --scope write``).

``PUT`` replaces what the operator states about a park, site or device: attributes left out take their
default; for a device they are handed back to its birth message (the precedence rule is in
:mod:`infra.db._registry`). ``POST`` creates a site or device and answers 409 when it exists. The import
takes the same YAML or CSV file as ``parkpulse registry import`` (``Content-Type: application/yaml`` or
``text/csv``; the JSON export imports as YAML), validates all of it first and answers 422 with every
problem and its line (``errors``), or applies it in one transaction (``?dry_run=true`` only reports).

``GET /v1/parks/{park_id}`` (the utility API's park) stays as it is; the registry's view of the park,
with its auto-register flag and counts, is ``GET /v1/parks/{park_id}/registry``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field

from api._models import Page, Problem, _Out
from api._operator import OPERATOR_RESPONSES, Connection, DeviceId, ParkId, ParkReader, ParkWriter
from infra.db import (
    RegistryConflictError,
    RegistryError,
    RegistryFileError,
    RegistryFormat,
    RegistryNotFoundError,
    dump_registry,
    get_device,
    get_park,
    get_site,
    import_registry,
    list_devices,
    list_sites,
    parse_registry,
    read_registry,
    registry_tree,
    save_device,
    save_park,
    save_site,
)
from schemas.registry import (
    DEVICE_FIELDS,
    PARK_FIELDS,
    SITE_FIELDS,
    DeviceEntry,
    DeviceFields,
    ParkFields,
    SiteEntry,
    SiteFields,
)
from schemas.topics import ID_PATTERN

router = APIRouter(prefix="/v1", tags=["registry"])

SiteId = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", max_length=64, description="site id")]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
#: A registry of tens of thousands of devices fits; anything larger is not a registry file.
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
_MEDIA: Final = {"yaml": "application/yaml", "csv": "text/csv"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **OPERATOR_RESPONSES,
    409: {"model": Problem, "description": "the site or device is registered already (POST); use PUT to change it",
          "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
}
_FILE_BODY: Final = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "object", "description": "registry file (YAML): park → sites → devices"}},
    "text/csv": {"schema": {"type": "string", "description": "registry file (CSV): one row per park, site or "
                                                              "device"}},
    "application/json": {"schema": {"type": "object", "description": "the JSON export (read as YAML)"}},
}}}


class RegistryParkOut(_Out):
    """A park as the registry holds it."""

    park_id: str
    name: str | None
    timezone: str
    province: str | None
    grid_region: str | None
    auto_register: bool
    created_at: datetime
    sites: int = Field(description="registered sites")
    devices: int = Field(description="registered devices (by the operator or auto-registered)")


class SiteOut(_Out):
    """A site of the park."""

    site_id: str
    name: str | None
    kind: str
    floor_area_m2: float | None
    roof_area_m2: float | None
    is_public_building: bool
    devices: int = Field(description="devices whose site this is")


class DeviceOut(_Out):
    """A device with its effective attributes and which of them the operator set."""

    device_id: str
    kind: str | None
    carrier: str | None
    metering_level: int | None
    site_id: str | None
    role: str | None
    register_max: float | None
    multiplier: float = Field(description="CT × PT ratio")
    rated_power_kw: float | None
    profile: str | None
    firmware: str | None
    operator_fields: list[str] = Field(description="attributes the operator set; the others come from the "
                                                   "device's birth message")
    registered_by: Literal["operator", "auto"]
    registered_at: datetime
    birth_at: datetime | None
    last_seen_at: datetime | None


class FieldChangeOut(_Out):
    """An attribute an import changes (null: empty, or for a device: left to the device)."""

    field: str
    old: Any
    new: Any


class EntityChangeOut(_Out):
    """What an import does to one park, site or device."""

    entity: Literal["park", "site", "device"]
    entity_id: str
    action: Literal["created", "updated", "unchanged"]
    fields: list[FieldChangeOut]


class ImportOut(_Out):
    """What the import changed (or would change, with ``dry_run``)."""

    park_id: str
    dry_run: bool
    counts: dict[str, dict[str, int]] = Field(description="per entity (park, site, device): created, updated, "
                                                          "unchanged")
    changes: list[EntityChangeOut] = Field(description="the created and updated entities")
    devices_not_in_file: int = Field(description="registered devices the file does not name (left as they are)")


def _registry_error(exc: RegistryError) -> HTTPException:
    if isinstance(exc, RegistryNotFoundError):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))
    if isinstance(exc, RegistryConflictError):
        return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))


def _created(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


@router.get("/parks/{park_id}/registry", response_model=RegistryParkOut, responses=_RESPONSES)
def registry_park(client: ParkReader, park_id: ParkId, conn: Connection) -> dict[str, Any]:
    """The park's registry attributes (time zone, province, grid region, auto-register) and counts."""
    try:
        return get_park(conn, park_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.put("/parks/{park_id}", response_model=RegistryParkOut, status_code=200,
            responses={**_RESPONSES, 201: {"model": RegistryParkOut, "description": "the park was created"}})
def put_park(client: ParkWriter, park_id: ParkId, body: ParkFields, conn: Connection,
             response: Response) -> dict[str, Any]:
    """Create the park (201) or replace its attributes (200); attributes left out take their default."""
    try:
        _created(response, save_park(conn, park_id, body.model_dump(include=set(PARK_FIELDS))))
        return get_park(conn, park_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


def _page(rows: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    total = len(rows)
    return {"items": rows[offset:offset + limit], "total": total, "limit": limit, "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None}


def _require_park(conn: Any, park_id: str) -> None:
    try:
        get_park(conn, park_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.get("/parks/{park_id}/sites", response_model=Page[SiteOut], responses=_RESPONSES)
def sites(client: ParkReader, park_id: ParkId, conn: Connection, limit: Limit = 1000,
          offset: Offset = 0) -> dict[str, Any]:
    """The park's sites, by id."""
    _require_park(conn, park_id)
    return _page(list_sites(conn, park_id), limit, offset)


@router.post("/parks/{park_id}/sites", response_model=SiteOut, responses=_RESPONSES, status_code=201)
def post_site(client: ParkWriter, park_id: ParkId, body: SiteEntry, conn: Connection) -> dict[str, Any]:
    """Register a new site (409 when it exists: change it with PUT)."""
    try:
        save_site(conn, park_id, body.site_id, body.model_dump(include=set(SITE_FIELDS)), mode="create")
        return get_site(conn, park_id, body.site_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.get("/parks/{park_id}/sites/{site_id}", response_model=SiteOut, responses=_RESPONSES)
def site(client: ParkReader, park_id: ParkId, site_id: SiteId, conn: Connection) -> dict[str, Any]:
    """One site."""
    try:
        return get_site(conn, park_id, site_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.put("/parks/{park_id}/sites/{site_id}", response_model=SiteOut, status_code=200,
            responses={**_RESPONSES, 201: {"model": SiteOut, "description": "the site was created"}})
def put_site(client: ParkWriter, *, park_id: ParkId, site_id: SiteId, body: SiteFields, conn: Connection,
             response: Response) -> dict[str, Any]:
    """Create the site (201) or replace its attributes (200); attributes left out take their default."""
    try:
        _created(response, save_site(conn, park_id, site_id, body.model_dump(include=set(SITE_FIELDS))))
        return get_site(conn, park_id, site_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.get("/parks/{park_id}/devices", response_model=Page[DeviceOut], responses=_RESPONSES)
def devices(client: ParkReader, park_id: ParkId, conn: Connection, limit: Limit = 1000,
            offset: Offset = 0) -> dict[str, Any]:
    """The park's devices, by id, with their attributes and which of them the operator set."""
    _require_park(conn, park_id)
    return _page(list_devices(conn, park_id), limit, offset)


@router.post("/parks/{park_id}/devices", response_model=DeviceOut, responses=_RESPONSES, status_code=201)
def post_device(client: ParkWriter, park_id: ParkId, body: DeviceEntry, conn: Connection) -> dict[str, Any]:
    """Register a new device with the attributes the operator states (409 when it exists: use PUT)."""
    try:
        save_device(conn, park_id, body.device_id, body.model_dump(include=set(DEVICE_FIELDS)), mode="create")
        return get_device(conn, park_id, body.device_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.get("/parks/{park_id}/devices/{device_id}", response_model=DeviceOut, responses=_RESPONSES)
def device(client: ParkReader, park_id: ParkId, device_id: DeviceId, conn: Connection) -> dict[str, Any]:
    """One device."""
    try:
        return get_device(conn, park_id, device_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.put("/parks/{park_id}/devices/{device_id}", response_model=DeviceOut, status_code=200,
            responses={**_RESPONSES, 201: {"model": DeviceOut, "description": "the device was registered"}})
def put_device(client: ParkWriter, *, park_id: ParkId, device_id: DeviceId, body: DeviceFields, conn: Connection,
               response: Response) -> dict[str, Any]:
    """Create the device (201) or replace what the operator states about it (200).

    Attributes given are the operator's and a birth message never changes them; attributes left out or
    null are handed back to the device's birth message.
    """
    try:
        _created(response, save_device(conn, park_id, device_id, body.model_dump(include=set(DEVICE_FIELDS))))
        return get_device(conn, park_id, device_id)
    except RegistryError as exc:
        raise _registry_error(exc) from None


@router.get("/parks/{park_id}/registry/export", responses={
    **_RESPONSES, 200: {"description": "the registry file", "content": {
        "application/yaml": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}}}}})
def export(client: ParkReader, park_id: ParkId, conn: Connection,
           fmt: Annotated[Literal["yaml", "csv", "json"], Query(alias="format", description="file format")] = "yaml",
           include_auto: Annotated[bool, Query(description="also list auto-registered devices")] = False) -> Response:
    """The park's registry file (park, sites, the operator's devices and the attributes the operator set)."""
    try:
        document = read_registry(conn, park_id, include_auto=include_auto)
    except RegistryError as exc:
        raise _registry_error(exc) from None
    if fmt == "json":
        return JSONResponse(registry_tree(document))
    disposition = f'attachment; filename="{park_id}-registry.{fmt}"'
    return PlainTextResponse(dump_registry(document, fmt), media_type=_MEDIA[fmt],
                             headers={"Content-Disposition": disposition})


def _problems(exc: RegistryFileError) -> JSONResponse:
    errors = [{"line": p.line, "field": p.field, "message": p.message} for p in exc.problems]
    detail = (f"the registry file has {len(errors)} problem(s); nothing was imported. Fix them (see errors: line, "
              f"field, message) and send the file again. First: {exc.problems[0] if exc.problems else '-'}")
    return JSONResponse({"type": "https://parkpulse.dev/problems/registry-file", "title": "Unprocessable Content",
                         "status": 422, "detail": detail, "errors": errors}, status_code=422,
                        media_type="application/problem+json")


@router.post("/parks/{park_id}/registry/import", response_model=ImportOut, responses=_RESPONSES,
             openapi_extra=_FILE_BODY)
async def import_file(request: Request, client: ParkWriter, park_id: ParkId, conn: Connection,
                      dry_run: Annotated[bool, Query(description="report what would change; write nothing")] = False,
                      ) -> Any:
    """Import the park's registry file, all or nothing (the same file as ``parkpulse registry import``)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt: RegistryFormat | None = "csv" if media in ("text/csv", "application/csv") else "yaml" if media in (
        "application/yaml", "application/x-yaml", "text/yaml", "application/json") else None
    if fmt is None:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            detail=f"send the file as text/csv or application/yaml (got {media or 'no content type'})")
    body = await request.body()
    if len(body) > MAX_FILE_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"the file has {len(body):,} bytes, more than {MAX_FILE_BYTES:,}; is it a registry?")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"the file is not UTF-8 (byte {exc.start}); save it as UTF-8 (Excel: CSV UTF-8)"
                            ) from None
    try:
        parsed = parse_registry(text, fmt)
        if parsed.document.park.park_id != park_id:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                detail=f"the file describes park {parsed.document.park.park_id!r}, not {park_id!r}; "
                                       f"send it to /v1/parks/{parsed.document.park.park_id}/registry/import")
        report = await run_in_threadpool(import_registry, conn, parsed, dry_run=dry_run)
    except RegistryFileError as exc:
        return _problems(exc)
    except RegistryError as exc:
        raise _registry_error(exc) from None
    return {"park_id": report.park_id, "dry_run": report.dry_run, "counts": report.counts(),
            "devices_not_in_file": report.devices_not_in_file,
            "changes": [{"entity": c.entity, "entity_id": c.entity_id, "action": c.action,
                         "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in c.fields]}
                        for c in report.changes if c.action != "unchanged"]}
