"""The six ParkPulse dashboards, one module each; :func:`all_boards` lists them in menu order."""

from __future__ import annotations

from dashboards._context import BuildContext
from dashboards._model import Board
from dashboards.boards import energy, health, live, pue, targets, vpp


def all_boards(ctx: BuildContext) -> list[Board]:
    """Every board for the context's language: live, energy & carbon, targets & 预警, PUE, VPP & DR, data
    quality and alarms."""
    return [module.board(ctx) for module in (live, energy, targets, pue, vpp, health)]


__all__ = ["all_boards"]
