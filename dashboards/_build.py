"""``parkpulse dashboards build``: render every board in the requested languages, validate, write JSON files."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards._context import BuildContext, build_context
from dashboards._model import DATASOURCES, DEFAULT_TIMEZONE, Board
from dashboards._render import render_board
from dashboards._text import Lang
from dashboards._validate import check_dashboards
from dashboards.boards import all_boards

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuiltBoard:
    """One rendered dashboard: its spec, the context it was built with, and the Grafana JSON."""

    board: Board
    context: BuildContext
    json: dict[str, Any]

    @property
    def uid(self) -> str:
        """The rendered uid (language suffix included)."""
        return str(self.json["uid"])

    @property
    def filename(self) -> str:
        """``<uid>.json``."""
        return f"{self.uid}.json"


def provisioned_types() -> dict[str, str]:
    """uid → plugin type of the datasources the boards are written against."""
    return {ds.uid: ds.type for ds in DATASOURCES}


def build_dashboards(langs: Iterable[Lang] = (Lang.BI,), *, timezone: str = DEFAULT_TIMEZONE,
                     datasources: Mapping[str, str] | None = None) -> list[BuiltBoard]:
    """Render and validate every board in every language; raises DashboardValidationError on a problem."""
    built: list[BuiltBoard] = []
    for lang in dict.fromkeys(langs):
        ctx = build_context(lang)
        built.extend(BuiltBoard(b, ctx, render_board(b, lang, timezone=timezone)) for b in all_boards(ctx))
    check_dashboards([b.json for b in built], datasources or provisioned_types())
    return built


def write_dashboards(out: Path, built: Iterable[BuiltBoard]) -> list[Path]:
    """Write one pretty-printed JSON file per dashboard into ``out`` (created); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in built:
        path = out / item.filename
        path.write_text(json.dumps(item.json, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        logger.info("wrote %s", path)
        paths.append(path)
    return paths
