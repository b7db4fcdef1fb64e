"""PUE per ISO/IEC 30134-2: energy-based, from facility and IT energy deltas, never averaged kW.

``PUE = E_facility / E_IT`` over a period, where both are interval-energy sums (cumulative-register deltas)
of the data centre's ``dc_facility`` and ``dc_it`` meters. Daily and monthly values are *interim* PUE
(iPUE, for trends); the headline is the rolling 12-month PUE, published only when all 12 months are
present. The measurement category (1: UPS output, 2: PDU output, 3: IT equipment input) comes from the IT
meters' metadata and is reported with every value. Values outside the plausible range (policy: < 1.0 or
> 3.0) are flagged as data errors, not graded; GB 40879 grades and city rules (Shenzhen < 1.25 new,
> 1.4 retrofit) come from the policy file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from aggregation._policy import PuePolicy, PuePolicyRule

FACILITY_ROLE: Final = "dc_facility"
IT_ROLE: Final = "dc_it"

PUE_SCHEMA: Final = pl.Schema({
    "park_id": pl.String(), "site_id": pl.String(), "grain": pl.String(), "period_start": pl.Datetime("us", "UTC"),
    "facility_kwh": pl.Float64(), "it_kwh": pl.Float64(), "pue": pl.Float64(), "estimated_share": pl.Float64(),
    "months": pl.Int32(),
})


@dataclass(frozen=True, slots=True)
class PueAssessment:
    """What a PUE value means under the policy."""

    value: float | None
    plausible: bool
    grade: int | None              # 1 best … n; None when above the limit value or not plausible
    within_limit: bool | None      # at or below the limit grade (GB 40879 grade 3)
    rules: tuple[tuple[PuePolicyRule, bool], ...]

    def summary(self) -> str:
        """One line for reports: grade and the rules that apply."""
        if self.value is None:
            return "no data"
        if not self.plausible:
            return "implausible (check CT wiring / missing IT meter)"
        grade = f"grade {self.grade}" if self.grade is not None else "above limit value"
        parts = [grade]
        for rule, hit in self.rules:
            if rule.comparison in ("lt", "le"):        # a target: say whether it is met
                parts.append(f"{rule.id}: {'met' if hit else 'not met'}")
            elif hit:                                   # a limit: say only when it is breached
                parts.append(f"{rule.id}: breached")
        return "; ".join(parts)


def pue_value(facility_kwh: float, it_kwh: float) -> float | None:
    """Energy-based PUE; ``None`` when there is no IT energy to divide by."""
    if it_kwh <= 0:
        return None
    return facility_kwh / it_kwh


def assess_pue(value: float | None, policy: PuePolicy, status: str | None = None) -> PueAssessment:
    """Grade ``value`` (GB 40879 limits) and evaluate the city rules for a ``new``/``existing`` DC.

    Rules whose ``applies_to`` does not match ``status`` are skipped; with ``status=None`` every rule is
    evaluated (the site's status is unknown).
    """
    if value is None:
        return PueAssessment(None, False, None, None, ())
    plausible = policy.plausible_min <= value <= policy.plausible_max
    grade: int | None = None
    if plausible:
        for i, limit in enumerate(policy.grade_limits, start=1):
            if value <= limit:
                grade = i
                break
    within = (value <= policy.grade_limits[-1]) if plausible and policy.grade_limits else None
    rules = tuple((r, r.triggered(value)) for r in policy.rules
                  if plausible and (status is None or r.applies_to in (status, "all")))
    return PueAssessment(value, plausible, grade, within, rules)


def pue_table(rollups: pl.DataFrame) -> pl.DataFrame:
    """Interim PUE per data-centre site and period from meter rollups joined with their role.

    ``rollups`` needs ``park_id, site_id, role, grain, period_start, energy, estimated_energy`` (kWh of
    ``active_energy_import``). Sites without both facility and IT meters are left out.
    """
    if rollups.height == 0:
        return PUE_SCHEMA.to_frame()
    wide = (rollups.lazy()
            .filter(pl.col("role").is_in([FACILITY_ROLE, IT_ROLE]))
            .group_by("park_id", "site_id", "grain", "period_start")
            .agg(facility_kwh=pl.col("energy").filter(pl.col("role") == FACILITY_ROLE).sum(),
                 it_kwh=pl.col("energy").filter(pl.col("role") == IT_ROLE).sum(),
                 est=pl.col("estimated_energy").sum(), tot=pl.col("energy").sum(),
                 has_fac=(pl.col("role") == FACILITY_ROLE).any(), has_it=(pl.col("role") == IT_ROLE).any())
            .filter(pl.col("has_fac") & pl.col("has_it"))
            .with_columns(pue=pl.when(pl.col("it_kwh") > 0).then(pl.col("facility_kwh") / pl.col("it_kwh")),
                          estimated_share=pl.when(pl.col("tot") > 0).then(pl.col("est") / pl.col("tot")),
                          months=pl.lit(1, pl.Int32()))
            .sort("park_id", "site_id", "grain", "period_start")
            .collect(engine="in-memory"))
    return wide.select(PUE_SCHEMA.names()).cast(dict(PUE_SCHEMA))  # type: ignore[arg-type]


def rolling_12m(monthly: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """Rolling 12-month PUE ending with each month of ``monthly`` (a :func:`pue_table` of months).

    The window is the month and the 11 before it in the park's calendar; ``months`` says how many of the
    12 had data, and ``pue`` is null unless all 12 did (ISO/IEC 30134-2 annual PUE).
    """
    m = monthly.filter(pl.col("grain") == "month")
    if m.height == 0:
        return PUE_SCHEMA.to_frame()
    local = pl.col("period_start").dt.convert_time_zone(timezone)
    keyed = m.with_columns(mi=(local.dt.year().cast(pl.Int32()) * 12 + local.dt.month().cast(pl.Int32()) - 1),
                           est_kwh=(pl.col("facility_kwh") + pl.col("it_kwh"))
                           * pl.col("estimated_share").fill_null(0.0))
    ends = keyed.select("park_id", "site_id", "period_start", end_mi="mi")
    window = (ends.join(keyed.select("park_id", "site_id", "mi", "facility_kwh", "it_kwh", "est_kwh"),
                        on=["park_id", "site_id"], how="inner")
              .filter((pl.col("mi") <= pl.col("end_mi")) & (pl.col("mi") > pl.col("end_mi") - 12))
              .group_by("park_id", "site_id", "period_start")
              .agg(pl.col("facility_kwh").sum(), pl.col("it_kwh").sum(), pl.col("est_kwh").sum(),
                   months=pl.len().cast(pl.Int32()))
              .with_columns(
                  grain=pl.lit("rolling_12m"),
                  pue=pl.when((pl.col("months") == 12) & (pl.col("it_kwh") > 0))
                  .then(pl.col("facility_kwh") / pl.col("it_kwh")),
                  estimated_share=pl.when((pl.col("facility_kwh") + pl.col("it_kwh")) > 0)
                  .then(pl.col("est_kwh") / (pl.col("facility_kwh") + pl.col("it_kwh"))))
              .sort("park_id", "site_id", "period_start"))
    return window.select(PUE_SCHEMA.names()).cast(dict(PUE_SCHEMA))  # type: ignore[arg-type]
