"""The operator routers mounted by :func:`api.build_app`, one per job (registry, meter events, imports,
reports). Each module owns its router; this list is the one place they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

from api._alarms import router as alarms_router
from api._dr_calendar import router as dr_calendar_router
from api._imports import router as imports_router
from api._indicators import router as indicators_router
from api._meter_events import router as meter_events_router
from api._registry import router as registry_router
from api._reports import router as reports_router
from api._targets import router as targets_router
from api._uplink import router as uplink_router
from api._vpp import router as vpp_router

OPERATOR_ROUTERS: list[APIRouter] = [
    alarms_router,
    dr_calendar_router,
    imports_router,
    indicators_router,
    meter_events_router,
    registry_router,
    reports_router,
    targets_router,
    uplink_router,
    vpp_router,
]
