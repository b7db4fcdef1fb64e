"""The operator routers mounted by :func:`api.build_app`, one per job (registry, meter events, imports,
reports). Each module owns its router; this list is the one place they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

OPERATOR_ROUTERS: list[APIRouter] = []
