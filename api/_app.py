"""The FastAPI application: wiring, RFC 9457 problem responses, health, OpenAPI at ``/openapi.json``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api._auth import Authenticator
from api._keys import VerifiedKeyCache
from api._keystore import KeyStore, PgKeyStore
from api._models import HealthOut
from api._quarantine import QuarantineBackend
from api._quarantine import router as quarantine_router
from api._routers import OPERATOR_ROUTERS
from api._routes import router
from api._settings import ApiSettings
from flex import (
    CalendarCoverageError,
    DrService,
    DrStore,
    FlexError,
    InsufficientBaselineDataError,
    InvalidEventError,
    InvalidLoadDataError,
    NotFoundError,
    load_policy,
)
from ingest._replay import MemoryQuarantine, PgQuarantine
from ingest.settings import IngestSettings

logger = logging.getLogger(__name__)

PROBLEM_MEDIA = "application/problem+json"
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 422: "Unprocessable Content", 500: "Internal Server Error"}


def _version() -> str:
    try:
        return version("parkpulse")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def problem(status_code: int, detail: str, *, kind: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": f"https://parkpulse.dev/problems/{kind or status_code}",
        "title": _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status_code, media_type=PROBLEM_MEDIA, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return problem(422, f"{where}: {first['msg']}" if where else str(first["msg"]), kind="validation",
                       errors=errors)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return problem(404, str(exc), kind="not-found")

    @app.exception_handler(FlexError)
    async def flex_error(request: Request, exc: FlexError) -> JSONResponse:
        if isinstance(exc, InsufficientBaselineDataError):
            return problem(422, str(exc), kind="insufficient-data")
        if isinstance(exc, CalendarCoverageError | InvalidEventError | InvalidLoadDataError):
            return problem(422, str(exc), kind="unprocessable")
        logger.error("unexpected DR error on %s: %s", request.url.path, exc)
        return problem(500, "internal error while computing the result", kind="internal")


def build_app(service: DrService, keys: KeyStore, settings: ApiSettings | Any,
              quarantine: QuarantineBackend | None = None, *, database_url: str | None = None) -> FastAPI:
    """An app over the given service, key store and quarantine (tests pass in-memory ones; no quarantine
    backend means an empty in-memory one). The operator endpoints (registry, meter events, imports,
    reports) use ``database_url`` and answer 503 without one."""
    app = FastAPI(
        title="ParkPulse utility API",
        version=_version(),
        summary="Demand-response data for utilities (flexibility, DR capacity, baselines, events) and the park's "
                "quarantine for operators.",
        description=(
            "Authenticate with a per-utility API key (`X-API-Key: pp_…` or `Authorization: Bearer pp_…`); each "
            "key is scoped to parks and carries scopes: `read` for every GET, `write` for operator actions such as "
            "quarantine replay. Quantities name their unit (`_kw`, `_kwh`, `_pct`, `_h`); times are UTC "
            "ISO 8601. `up` = load reduction (削峰), `down` = load increase (填谷). Errors are RFC 9457 "
            "problem documents. OpenADR 3 reports are under `/openadr`."
        ),
        openapi_url="/openapi.json",
    )
    app.state.service = service
    app.state.settings = settings
    app.state.database_url = database_url
    app.state.authenticator = Authenticator(keys, VerifiedKeyCache(ttl_s=getattr(settings, "key_cache_ttl_s", 60.0)))
    _install_handlers(app)

    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    def health() -> HealthOut:
        """Liveness (no authentication)."""
        return HealthOut(version=_version())

    app.include_router(router)
    app.state.quarantine = quarantine if quarantine is not None else MemoryQuarantine()
    app.include_router(quarantine_router)
    for operator_router in OPERATOR_ROUTERS:
        app.include_router(operator_router)
    return app


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The production app: DrStore and PgKeyStore on the configured database (closed on shutdown)."""
    cfg = settings or ApiSettings()  # type: ignore[call-arg]
    store = DrStore(cfg.database_url)
    policy = IngestSettings(database_url=cfg.database_url, mqtt_url=cfg.mqtt_url).validation_policy()
    service = DrService(store, policy=load_policy(cfg.dr_policy_file))
    app = build_app(service, PgKeyStore(cfg.database_url), cfg, PgQuarantine(cfg.database_url, policy=policy),
                    database_url=cfg.database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app.router.lifespan_context = lifespan
    return app

