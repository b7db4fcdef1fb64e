"""预警 levels: green, yellow or red by projected ÷ target, with hysteresis (pure).

The thresholds are data (``alarms/data/targets_thresholds.yaml``): for a **cap** (energy, CO₂, intensities,
PUE) yellow from 0.95 and red from 1.0; for a **floor** (non-fossil and renewable shares) yellow below 1.05
and red below 1.0.

Hysteresis, chosen so one noisy evaluation never moves the level and a real move is not held back long:

* the level moves **at once** when the ratio is past a threshold by at least ``margin`` (0.02 by default):
  it goes to the level the ratio reaches with every threshold moved ``margin`` against the move;
* a ratio past a threshold by less must stay on that side for ``persistence_days`` **consecutive daily
  evaluations** (3); several evaluations on one park-local day count as one. The level then moves to the
  least extreme level seen during that run (a ratio that touched red once in three yellow days goes to
  yellow, not red);
* any evaluation back on the current level's side ends the run.

So a ratio oscillating around a threshold by less than the margin never flips the level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alarms._projection import BandParams
from alarms._targets import TARGET_INDICATORS, Direction
from alarms._targets_errors import ThresholdsError

Level = Literal["green", "yellow", "red"]
Reason = Literal["first", "margin", "persistence"]
LEVELS: Final[tuple[Level, ...]] = ("green", "yellow", "red")
SEVERITY: Final[dict[str, int]] = {"green": 0, "yellow": 1, "red": 2}
LEVEL_ZH: Final[dict[str, str]] = {"green": "绿", "yellow": "黄", "red": "红"}

DEFAULT_THRESHOLDS_FILE: Final = Path(__file__).parent / "data" / "targets_thresholds.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Ratio = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Thresholds(_Model):
    """The yellow and red thresholds of one direction (on projected ÷ target)."""

    yellow: Ratio
    red: Ratio


class _Hysteresis(_Model):
    margin: Annotated[float, Field(ge=0, lt=0.5, allow_inf_nan=False)] = 0.02
    persistence_days: Annotated[int, Field(ge=1, le=365)] = 3


class _ProjectionParams(_Model):
    low_quantile: Annotated[float, Field(ge=0, lt=0.5)] = 0.1
    high_quantile: Annotated[float, Field(gt=0.5, le=1)] = 0.9
    min_backtest_points: Annotated[int, Field(ge=1, le=120)] = 5
    default_relative: Annotated[float, Field(ge=0, le=1)] = 0.15
    profile_months: Annotated[int, Field(ge=1, le=12)] = 3


class _Levels(_Model):
    cap: Thresholds
    floor: Thresholds


class _File(_Model):
    levels: _Levels
    indicators: dict[str, Thresholds] = Field(default_factory=dict)
    hysteresis: _Hysteresis = _Hysteresis()
    projection: _ProjectionParams = _ProjectionParams()

    @model_validator(mode="after")
    def _consistent(self) -> _File:
        problems = []
        for name, th in {"levels.cap": self.levels.cap, **{f"indicators.{k}": v for k, v in self.indicators.items()
                                                             if k in TARGET_INDICATORS
                                                             and TARGET_INDICATORS[k].direction == "cap"}}.items():
            if th.yellow > th.red:
                problems.append(f"{name}: a cap's yellow ({th.yellow}) must not be above its red ({th.red})")
        for name, th in {"levels.floor": self.levels.floor, **{f"indicators.{k}": v for k, v in self.indicators.items()
                                                               if k in TARGET_INDICATORS
                                                               and TARGET_INDICATORS[k].direction == "floor"}}.items():
            if th.yellow < th.red:
                problems.append(f"{name}: a floor's yellow ({th.yellow}) must not be below its red ({th.red})")
        unknown = sorted(set(self.indicators) - set(TARGET_INDICATORS))
        if unknown:
            problems.append(f"indicators: {', '.join(unknown)} have no targets; use {', '.join(TARGET_INDICATORS)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True, slots=True)
class WarningPolicy:
    """Thresholds per direction and indicator, the hysteresis and the projection band parameters."""

    cap: Thresholds
    floor: Thresholds
    indicators: dict[str, Thresholds] = field(default_factory=dict)
    margin: float = 0.02
    persistence_days: int = 3
    band: BandParams = field(default_factory=BandParams)
    source: str = "defaults"

    def thresholds(self, indicator: str) -> Thresholds:
        """The thresholds of ``indicator``: its override, else its direction's."""
        if indicator in self.indicators:
            return self.indicators[indicator]
        return self.cap if TARGET_INDICATORS[indicator].direction == "cap" else self.floor


def load_warning_policy(path: Path | None = None) -> WarningPolicy:
    """The 预警 policy of ``path`` (default: the packaged ``targets_thresholds.yaml``)."""
    file = path or DEFAULT_THRESHOLDS_FILE
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThresholdsError(f"{file}: cannot be read ({exc.strerror}); check the path") from None
    except yaml.YAMLError as exc:
        raise ThresholdsError(f"{file}: not valid YAML ({exc}); check the indentation") from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ThresholdsError(f"{file}: {detail}; see alarms/data/targets_thresholds.yaml for the layout") from None
    p = parsed.projection
    return WarningPolicy(parsed.levels.cap, parsed.levels.floor, dict(parsed.indicators), parsed.hysteresis.margin,
                         parsed.hysteresis.persistence_days,
                         BandParams(p.low_quantile, p.high_quantile, p.min_backtest_points, p.default_relative,
                                    p.profile_months), str(file))


def target_ratio(projected: float, target: float) -> float:
    """projected ÷ target; a target of 0 gives +inf when exceeded (any amount) and 1 when met exactly."""
    if target > 0:
        return projected / target
    return math.inf if projected > 0 else 1.0


def level_at(ratio: float, thresholds: Thresholds, direction: Direction, toward_worse: float = 0.0) -> Level:
    """The level of ``ratio`` with every threshold moved ``toward_worse`` (ratio units) in the worse direction."""
    if direction == "cap":
        if ratio >= thresholds.red + toward_worse:
            return "red"
        return "yellow" if ratio >= thresholds.yellow + toward_worse else "green"
    if ratio < thresholds.red - toward_worse:
        return "red"
    return "yellow" if ratio < thresholds.yellow - toward_worse else "green"


@dataclass(frozen=True, slots=True)
class WarningState:
    """A target's level and its hysteresis run: the pending level and how many days it has lasted."""

    level: Level
    pending: Level | None
    count: int
    day: date


@dataclass(frozen=True, slots=True)
class WarningStep:
    """The state after one evaluation, and the change it made (``reason`` None: no change)."""

    state: WarningState
    previous: Level | None
    reason: Reason | None

    @property
    def changed(self) -> bool:
        """True when the level changed (or was set for the first time)."""
        return self.reason is not None


def step(state: WarningState | None, ratio: float, thresholds: Thresholds, direction: Direction, *,
         margin: float, persistence_days: int, day: date) -> WarningStep:
    """One evaluation on park-local ``day`` (see the module docstring for the rules)."""
    candidate = level_at(ratio, thresholds, direction)
    if state is None:
        return WarningStep(WarningState(candidate, None, 0, day), None, "first")
    current = state.level
    if candidate == current:
        return WarningStep(WarningState(current, None, 0, day), current, None)
    worse = SEVERITY[candidate] > SEVERITY[current]
    strong = level_at(ratio, thresholds, direction, margin if worse else -margin)
    if (SEVERITY[strong] > SEVERITY[current]) if worse else (SEVERITY[strong] < SEVERITY[current]):
        return WarningStep(WarningState(strong, None, 0, day), current, "margin")
    pending = state.pending
    if pending is not None and (SEVERITY[pending] > SEVERITY[current]) == worse:
        count = state.count + (1 if day > state.day else 0)
        least = min if worse else max
        pending = LEVELS[least(SEVERITY[pending], SEVERITY[candidate])]
    else:
        count, pending = 1, candidate
    if count >= persistence_days:
        return WarningStep(WarningState(pending, None, 0, day), current, "persistence")
    return WarningStep(WarningState(current, pending, count, day), current, None)
