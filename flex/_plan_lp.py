"""A small sparse linear-programme builder and its HiGHS solve (through ``highspy``), for the dispatch planner.

The planner states its model as named columns with bounds and costs and rows as sparse ``{column: coefficient}``
maps with lower/upper bounds; :func:`solve` hands it to HiGHS as a row-wise matrix and returns the column
values, or raises :class:`flex.errors.PlanError` when HiGHS does not report an optimum. Kept apart from the
formulation so the formulation reads as algebra and this file is the only one that knows the solver's API.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import highspy
import numpy as np

from flex.errors import PlanError

INF = math.inf


def _new_highs() -> highspy.Highs:
    """A solver instance. HiGHS prints its banner on the process's stdout (C level, before any option can
    be set) when an instance is created; the CLIs that print JSON, and the demo, must keep stdout clean, so
    file descriptor 1 points at /dev/null while the instance is made."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass(slots=True)
class LinearProgram:
    """Minimise Σ cost·x subject to row_lower ≤ A·x ≤ row_upper and col_lower ≤ x ≤ col_upper."""

    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)

    def column(self, lower: float = 0.0, upper: float = INF, cost: float = 0.0) -> int:
        """Add a column; returns its index. A fixed column has ``lower == upper``."""
        lower, upper = (0.0 if abs(lower) < 1e-9 else lower), (0.0 if abs(upper) < 1e-9 else upper)
        upper = max(upper, lower)  # rounding in a caller's bound arithmetic must not make the model infeasible
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        return len(self.cost) - 1

    def row(self, coefficients: Mapping[int, float], lower: float = -INF, upper: float = INF) -> None:
        """Add ``lower ≤ Σ coefficient·x ≤ upper`` (coefficients below 1e-12 in size are dropped, bounds below
        1e-9 in size taken as 0: such values come from rounding and only make the problem ill-scaled)."""
        terms = {col: c for col, c in coefficients.items() if abs(c) > 1e-12}
        lower, upper = (0.0 if abs(lower) < 1e-9 else lower), (0.0 if abs(upper) < 1e-9 else upper)
        if terms:
            self.rows.append((terms, lower, upper))


def _bound(value: float) -> float:
    return highspy.kHighsInf if value == INF else -highspy.kHighsInf if value == -INF else value


def solve(lp: LinearProgram, *, time_limit_s: float = 10.0) -> list[float]:
    """Column values of an optimal solution; :class:`PlanError` when HiGHS finds none (infeasible, time out)."""
    model = highspy.HighsLp()
    model.num_col_ = len(lp.cost)
    model.num_row_ = len(lp.rows)
    model.col_cost_ = np.array(lp.cost, dtype=np.float64)
    model.col_lower_ = np.array([_bound(v) for v in lp.lower], dtype=np.float64)
    model.col_upper_ = np.array([_bound(v) for v in lp.upper], dtype=np.float64)
    model.row_lower_ = np.array([_bound(lo) for _, lo, _ in lp.rows], dtype=np.float64)
    model.row_upper_ = np.array([_bound(hi) for _, _, hi in lp.rows], dtype=np.float64)
    starts: list[int] = [0]
    index: list[int] = []
    value: list[float] = []
    for terms, _, _ in lp.rows:
        index.extend(terms)
        value.extend(terms.values())
        starts.append(len(index))
    model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    model.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    model.a_matrix_.index_ = np.array(index, dtype=np.int32)
    model.a_matrix_.value_ = np.array(value, dtype=np.float64)
    # HiGHS's presolve can call a feasible model with nearly coincident bounds infeasible (seen with
    # bounds 1e-7 apart); the solver without presolve decides such models correctly, so it is the retry.
    reason = ""
    for presolve in ("choose", "off"):
        highs = _new_highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("time_limit", float(time_limit_s))
        highs.setOptionValue("presolve", presolve)
        highs.passModel(model)
        highs.run()
        status = highs.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return [float(v) for v in highs.getSolution().col_value]
        reason = highs.modelStatusToString(status)
    raise PlanError(f"the LP solver stopped without an optimum ({reason})")
