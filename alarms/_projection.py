"""Year-end and month-end projection of a target quantity, and the back-test of the method (pure).

Input: the quantity's monthly actuals (numerator and, for intensities, shares and PUE, a denominator; each
projected separately and divided at the end), the month the data runs to (``cutoff``: the first month not
yet closed) and, for that running month, its partial actuals and the share of it they cover.

Forecast of a month ``m`` not yet closed, from the closed months before ``cutoff`` only:

1. ``last_year_trend``: the same month a year earlier x this year's trend, the ratio of the year-to-date
   closed months to the same months a year earlier (in January, with no closed month of the year yet: the
   trailing twelve months against the twelve before them);
2. ``recent_rate`` (no history a year back): the mean daily rate of the last closed months (up to
   ``profile_months``, within the last year) x the days of ``m``;
3. ``current_rate`` (no closed month at all): the running month's own daily rate so far.

The running month's month-end = its actuals so far + its forecast x the share not yet covered. A closed
month without data is filled with its forecast (and flagged). The projection is recomputed from the stored
actuals every time, so late data that revises a month is in the next projection.

Back-test: every closed month that has at least one closed month before it is forecast from the months
before it, exactly as above (one month ahead), and compared with what happened: MAPE and bias of
``(forecast - actual) / actual``. The uncertainty band applies the spread of ``actual / forecast - 1`` over
the back-test (10th..90th percentile by default) to everything still forecast: a deliberately cautious band,
as it assumes the months' errors do not cancel.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

Method = Literal["last_year_trend", "recent_rate", "current_rate"]
PointKind = Literal["actual", "filled", "partial", "forecast"]

_METHOD_ORDER: Final[tuple[Method, ...]] = ("last_year_trend", "recent_rate", "current_rate")
METHOD_TEXT: Final[dict[str, tuple[str, str]]] = {
    "last_year_trend": ("去年同月 x 今年累计趋势", "same month last year x this year's YTD trend"),
    "recent_rate": ("最近完整月份日均值 x 天数", "mean daily rate of the last complete months x days"),
    "current_rate": ("本月至今日均值 x 天数", "this month's daily rate so far x days"),
}


def add_months(d: date, months: int) -> date:
    """First day of the month ``months`` after ``d``'s month."""
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def days_in(month: date) -> int:
    """Days of ``month``."""
    return calendar.monthrange(month.year, month.month)[1]


@dataclass(frozen=True, slots=True)
class Quantity:
    """Monthly actuals of one target quantity: a total (``denominator`` None) or a ratio x ``scale`` (at most
    ``upper``).

    Keys are month starts (park-local). A month counts only when every series it needs has a value (and
    the denominator is positive).
    """

    numerator: Mapping[date, float]
    denominator: Mapping[date, float] | None = None
    scale: float = 1.0
    upper: float | None = None  # the largest meaningful value (100 for a share in %): bands stop there

    def months(self) -> list[date]:
        """Months with a usable value, in order."""
        if self.denominator is None:
            return sorted(self.numerator)
        den = self.denominator
        return sorted(m for m in self.numerator if den.get(m, 0.0) > 0)

    def value(self, month: date) -> float | None:
        """The month's value (total, or numerator / denominator x scale)."""
        num = self.numerator.get(month)
        if num is None:
            return None
        if self.denominator is None:
            return num
        den = self.denominator.get(month)
        return num / den * self.scale if den is not None and den > 0 else None

    def combine(self, num: float, den: float | None) -> float | None:
        """A value from summed parts (None for a ratio over a non-positive denominator)."""
        if self.denominator is None:
            return num
        if den is None or den <= 0:
            return None
        value = num / den * self.scale
        return min(value, self.upper) if self.upper is not None else value


@dataclass(frozen=True, slots=True)
class Partial:
    """The running month's actuals so far and the share of the month they cover (0..1)."""

    numerator: float
    denominator: float | None
    covered: float


@dataclass(frozen=True, slots=True)
class MonthForecast:
    """One series' forecast for one month and how it was made (``factor``: the trend ratio or daily rate)."""

    value: float
    method: Method
    factor: float


class Forecaster:
    """Forecasts months of one series from its closed months before ``cutoff`` (see the module docstring)."""

    def __init__(self, values: Mapping[date, float], cutoff: date, *, partial_rate: float | None = None,
                 profile_months: int = 3) -> None:
        self._values = {m: v for m, v in values.items() if m < cutoff}
        self._cutoff = cutoff
        self._partial_rate = partial_rate
        self.trend = self._trend()
        self.rate = self._rate(profile_months)

    def _trend(self) -> float | None:
        v, cutoff = self._values, self._cutoff
        year_start = date(cutoff.year, 1, 1)
        pairs = [m for m in v if year_start <= m and add_months(m, -12) in v]
        if not pairs:
            pairs = [m for m in v if add_months(cutoff, -12) <= m and add_months(m, -12) in v]
        before = math.fsum(v[add_months(m, -12)] for m in pairs)
        if not pairs or before <= 0:
            return None
        return math.fsum(v[m] for m in pairs) / before

    def _rate(self, n: int) -> float | None:
        recent = sorted(m for m in self._values if m >= add_months(self._cutoff, -12))[-n:]
        if not recent:
            return None
        return math.fsum(self._values[m] for m in recent) / sum(days_in(m) for m in recent)

    def forecast(self, month: date) -> MonthForecast | None:
        """The month's forecast, or None when there is nothing to forecast from."""
        prior = self._values.get(add_months(month, -12))
        if prior is not None and self.trend is not None:
            return MonthForecast(prior * self.trend, "last_year_trend", self.trend)
        if self.rate is not None:
            return MonthForecast(self.rate * days_in(month), "recent_rate", self.rate)
        if self._partial_rate is not None:
            return MonthForecast(self._partial_rate * days_in(month), "current_rate", self._partial_rate)
        return None


@dataclass(frozen=True, slots=True)
class BacktestPoint:
    """One closed month forecast from the months before it."""

    month: date
    actual: float
    forecast: float
    method: Method


@dataclass(frozen=True, slots=True)
class Backtest:
    """The method's one-month-ahead error on the quantity's own history."""

    points: tuple[BacktestPoint, ...]

    @property
    def n(self) -> int:
        """Months back-tested (with a non-zero actual)."""
        return len(self._errors())

    def _errors(self) -> list[float]:
        return [(p.forecast - p.actual) / p.actual for p in self.points if p.actual != 0]

    @property
    def mape(self) -> float | None:
        """Mean absolute percentage error, as a fraction (0.043 = 4.3 %)."""
        errors = self._errors()
        return math.fsum(abs(e) for e in errors) / len(errors) if errors else None

    @property
    def bias(self) -> float | None:
        """Mean signed error as a fraction: positive = the method over-forecasts."""
        errors = self._errors()
        return math.fsum(errors) / len(errors) if errors else None

    def by_method(self) -> dict[str, tuple[int, float]]:
        """Per method: months back-tested and their MAPE (fraction)."""
        out: dict[str, tuple[int, float]] = {}
        for method in _METHOD_ORDER:
            errors = [abs(p.forecast - p.actual) / p.actual for p in self.points if p.method == method and p.actual]
            if errors:
                out[method] = (len(errors), math.fsum(errors) / len(errors))
        return out

    def band(self, params: BandParams) -> tuple[float, float, str]:
        """Relative (low, high) factors on forecast parts (``actual / forecast - 1``) and how they were set."""
        ratios = sorted(p.actual / p.forecast - 1 for p in self.points if p.forecast > 0)
        if len(ratios) >= params.min_points:
            lo, hi = percentile(ratios, params.low_quantile), percentile(ratios, params.high_quantile)
            how = f"back-test p{params.low_quantile * 100:g}..p{params.high_quantile * 100:g} of {len(ratios)} months"
        elif ratios:
            widest = max(abs(r) for r in ratios)
            lo, hi = -widest, widest
            how = f"widest back-test error of {len(ratios)} month(s)"
        else:
            lo, hi = -params.default_relative, params.default_relative
            how = f"no back-test yet: default +/-{params.default_relative:.0%}"
        return min(lo, 0.0), max(hi, 0.0), how


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile ``q`` (0..1) of non-empty ``sorted_values``."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class BandParams:
    """How the uncertainty band is drawn from the back-test (``alarms/data/targets_thresholds.yaml``)."""

    low_quantile: float = 0.1
    high_quantile: float = 0.9
    min_points: int = 5
    default_relative: float = 0.15
    profile_months: int = 3


def _forecast_value(q: Quantity, month: date, cutoff: date, profile_months: int,
                    partial: Partial | None = None) -> tuple[float, float | None, Method] | None:
    """(numerator, denominator, method) forecast of ``month`` from the months before ``cutoff``."""
    num_rate = den_rate = None
    if partial is not None and partial.covered > 0:
        days = days_in(cutoff) * partial.covered
        num_rate = partial.numerator / days
        den_rate = partial.denominator / days if partial.denominator is not None else None
    usable = set(q.months())
    num = Forecaster({m: v for m, v in q.numerator.items() if m in usable}, cutoff, partial_rate=num_rate,
                     profile_months=profile_months).forecast(month)
    if num is None:
        return None
    if q.denominator is None:
        return num.value, None, num.method
    den = Forecaster({m: v for m, v in q.denominator.items() if m in usable}, cutoff, partial_rate=den_rate,
                     profile_months=profile_months).forecast(month)
    if den is None:
        return None
    # a ratio is only as good as its weaker part: name the later fallback of the two
    method = max(num.method, den.method, key=_METHOD_ORDER.index)
    return num.value, den.value, method


def backtest(q: Quantity, cutoff: date, profile_months: int = 3) -> Backtest:
    """Forecast every closed month before ``cutoff`` from the months before it; compare with the actual."""
    points: list[BacktestPoint] = []
    for month in q.months():
        if month >= cutoff:
            break
        fc = _forecast_value(q, month, month, profile_months)
        actual = q.value(month)
        if fc is None or actual is None:
            continue
        value = q.combine(fc[0], fc[1])
        if value is not None:
            points.append(BacktestPoint(month, actual, value, fc[2]))
    return Backtest(tuple(points))


@dataclass(frozen=True, slots=True)
class MonthPoint:
    """One month of the projected year: its value (actual, partial + forecast, or forecast) and band."""

    month: date
    kind: PointKind
    value: float | None
    low: float | None
    high: float | None
    method: Method | None = None
    actual_numerator: float | None = None


@dataclass(frozen=True, slots=True)
class Projection:
    """Year-end projection of one quantity with its band, months, method mix and back-test."""

    year: int
    cutoff: date
    value: float | None
    low: float | None
    high: float | None
    to_date: float | None
    months: tuple[MonthPoint, ...]
    backtest: Backtest
    band_how: str
    methods: dict[str, int] = field(default_factory=dict)
    missing: str | None = None

    @property
    def method_text(self) -> str:
        """The forecast methods used, English, with how many months each covered."""
        if not self.methods:
            return "actuals only (the year has closed)"
        return "; ".join(f"{METHOD_TEXT[m][1]} ({n} mo)" for m, n in sorted(self.methods.items()))

    @property
    def method_text_zh(self) -> str:
        """The forecast methods used, Chinese."""
        if not self.methods:
            return "全年已结束，均为实际值"
        return "；".join(f"{METHOD_TEXT[m][0]}（{n} 个月）" for m, n in sorted(self.methods.items()))

    @property
    def filled(self) -> int:
        """Closed months without data, filled with their forecast."""
        return sum(1 for p in self.months if p.kind == "filled")

    def month(self, month: date) -> MonthPoint | None:
        """The point of one month of the year."""
        return next((p for p in self.months if p.month == month), None)


@dataclass
class _Sums:
    num_actual: float = 0.0
    den_actual: float = 0.0
    num_forecast: float = 0.0
    den_forecast: float = 0.0


def project(q: Quantity, year: int, cutoff: date, partial: Partial | None = None,
            params: BandParams | None = None) -> Projection:
    """Project ``q`` to the end of ``year`` from the closed months before ``cutoff`` (and ``partial``)."""
    params = params or BandParams()
    bt = backtest(q, cutoff, params.profile_months)
    lo_f, hi_f, how = bt.band(params)
    usable = set(q.months())
    sums, points, methods = _Sums(), [], Counter[str]()
    for i in range(12):
        month = date(year, i + 1, 1)
        part = partial if month == cutoff else None
        if month < cutoff and month in usable:
            num, den = q.numerator[month], (q.denominator or {}).get(month)
            sums.num_actual += num
            sums.den_actual += den or 0.0
            value = q.value(month)
            points.append(MonthPoint(month, "actual", value, value, value, None, num))
            continue
        fc = _forecast_value(q, month, cutoff, params.profile_months, partial)
        if fc is None:
            return Projection(year, cutoff, None, None, None, None, (), bt, how, {},
                              missing=f"nothing to forecast {month:%Y-%m} from: no actuals before {cutoff:%Y-%m}")
        share = 1.0 - min(max(part.covered, 0.0), 1.0) if part is not None else 1.0
        f_num, f_den = fc[0] * share, (fc[1] or 0.0) * share
        a_num = part.numerator if part is not None else 0.0
        a_den = (part.denominator or 0.0) if part is not None else 0.0
        sums.num_actual += a_num
        sums.den_actual += a_den
        sums.num_forecast += f_num
        sums.den_forecast += f_den
        methods[fc[2]] += 1
        den_total = a_den + f_den if q.denominator is not None else None
        kind: PointKind = "partial" if part is not None else ("filled" if month < cutoff else "forecast")
        points.append(MonthPoint(month, kind, q.combine(a_num + f_num, den_total),
                                 q.combine(a_num + f_num * (1 + lo_f), den_total),
                                 q.combine(a_num + f_num * (1 + hi_f), den_total), fc[2],
                                 a_num if part is not None else None))
    den_all = sums.den_actual + sums.den_forecast if q.denominator is not None else None
    num_all = sums.num_actual + sums.num_forecast
    to_date = q.combine(sums.num_actual, sums.den_actual if q.denominator is not None else None)
    return Projection(year, cutoff, q.combine(num_all, den_all),
                      q.combine(sums.num_actual + sums.num_forecast * (1 + lo_f), den_all),
                      q.combine(sums.num_actual + sums.num_forecast * (1 + hi_f), den_all),
                      to_date, tuple(points), bt, how, dict(methods))
