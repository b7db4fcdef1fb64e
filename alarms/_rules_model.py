"""Alarm rules as data: the pydantic model of ``alarm_rules.yaml`` and the per-park overrides.

The built-in file (``alarms/data/alarm_rules.yaml``) or an operator's file of the same schema lists the rules;
its ``parks:`` section and the ``alarm_rule_overrides`` table (``parkpulse alarms rules --set``) override any
field of a rule for one park, the database winning over the file. Everything here is pure: reading the file
and the table is the caller's job, so the merge rules are testable without I/O. Every problem names where it
is (file, park, rule, field) and what to do, as :class:`~alarms._rules_errors.AlarmRulesError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from aggregation._quality import IntervalFlag
from alarms._notification import Severity
from alarms._rules_errors import AlarmRulesError

RULE_ID_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
#: Fields of a rule an override may change (``id`` and ``kind`` identify it and stay).
OVERRIDABLE: Final = ("enabled", "severity", "raise_after", "reopen_within_min", "title_zh", "title_en", "description")
BUILTIN: Final = "alarm_rules.yaml (built-in)"

RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN)]
FLAG_NAMES: Final = tuple(f.name.lower() for f in IntervalFlag if f.name is not None)


def _flag_name(name: str) -> str:
    if name not in FLAG_NAMES:
        raise ValueError(f"unknown interval flag {name!r}; the flags are {', '.join(FLAG_NAMES)}")
    return name


FlagName = Annotated[str, AfterValidator(_flag_name)]
Pct = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceOfflineParams(_Params):
    """No reading for longer than ``intervals`` × the device's reporting interval, or a last will "offline"."""

    intervals: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 3.0
    default_interval_s: Annotated[float, Field(gt=0, le=86_400 * 7, allow_inf_nan=False)] = 900.0
    min_silence_s: Annotated[float, Field(ge=0, le=86_400 * 31, allow_inf_nan=False)] = 900.0
    last_will: bool = True
    grace_s: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] = 60.0


class DataGapParams(_Params):
    """Share of a local day's intervals with no energy at all, per meter."""

    lookback_days: Annotated[int, Field(ge=1, le=62)] = 2
    max_gap_pct: Pct = 5.0


class EstimatedShareParams(_Params):
    """Share of a local day's intervals VEE estimated, per meter."""

    lookback_days: Annotated[int, Field(ge=1, le=62)] = 2
    max_estimated_pct: Pct = 10.0


class CounterAnomalyParams(_Params):
    """Interval flags (``aggregation.IntervalFlag`` names, lower case) in the last hours of the park's data."""

    lookback_hours: Annotated[float, Field(gt=0, le=24 * 62, allow_inf_nan=False)] = 24.0
    flags: Annotated[tuple[FlagName, ...], Field(min_length=1)] = ("epoch_break", "spike")

    @property
    def mask(self) -> int:
        """The flags as one bit mask of ``interval_energy.flags``."""
        bits = 0
        for name in self.flags:
            bits |= IntervalFlag[name.upper()]
        return bits


class MeterBalanceParams(_Params):
    """Level-1 supply vs Σ level 2 per carrier in the newest periods of ``balance_checks``."""

    grain: Literal["hour", "day", "month"] = "day"
    lookback_periods: Annotated[int, Field(ge=1, le=366)] = 2
    limit_pct: Annotated[float | None, Field(ge=0, le=1000, allow_inf_nan=False)] = None


class PueLimits(_Params):
    """PUE limits of new and existing data centres (seed 002, Shenzhen: 1.25 and 1.4)."""

    new: Annotated[float, Field(ge=1, le=10, allow_inf_nan=False)] = 1.25
    existing: Annotated[float, Field(ge=1, le=10, allow_inf_nan=False)] = 1.4


SiteLimit = Literal["new", "existing"] | Annotated[float, Field(ge=1, le=10, allow_inf_nan=False)]


class PueLimitParams(_Params):
    """Energy-based PUE over the last ``window_days`` days of daily results, per data-centre site."""

    window_days: Annotated[int, Field(ge=1, le=366)] = 7
    min_days: Annotated[int, Field(ge=1, le=366)] = 3
    limits: PueLimits = PueLimits()
    default_status: Literal["new", "existing"] = "existing"
    sites: dict[Annotated[str, Field(min_length=1, max_length=64)], SiteLimit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _min_days_fit(self) -> PueLimitParams:
        if self.min_days > self.window_days:
            raise ValueError(f"min_days ({self.min_days}) must not exceed window_days ({self.window_days})")
        return self

    def limit_for(self, site_id: str) -> tuple[float, str]:
        """(limit, how it was chosen) for one site: its own number, its status, or the default status."""
        chosen = self.sites.get(site_id, self.default_status)
        if isinstance(chosen, str):
            return (self.limits.new if chosen == "new" else self.limits.existing), chosen
        return float(chosen), "site limit"


class ContractedDemandParams(_Params):
    """15-min demand of the level-1 electricity import meters vs the park's contracted maximum."""

    contracted_demand_kw: Annotated[float | None, Field(gt=0, le=1e7, allow_inf_nan=False)] = None
    interval_minutes: Literal[5, 10, 15, 30, 60] = 15
    lookback_hours: Annotated[float, Field(gt=0, le=24 * 31, allow_inf_nan=False)] = 1.0


class UplinkBacklogParams(_Params):
    """Records waiting for the municipal-platform uplink (a stub until the uplink exists)."""

    max_backlog_records: Annotated[int, Field(ge=0)] = 1000


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    enabled: bool = True
    severity: Severity
    raise_after: Annotated[int, Field(ge=1, le=1000)] = 1
    reopen_within_min: Annotated[float, Field(ge=0, le=60 * 24 * 31, allow_inf_nan=False)] = 30.0
    title_zh: Annotated[str, Field(min_length=1, max_length=200)]
    title_en: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] = ""


class DeviceOfflineRule(_Rule):
    """See :class:`DeviceOfflineParams`."""

    kind: Literal["device_offline"]
    params: DeviceOfflineParams = DeviceOfflineParams()


class DataGapRule(_Rule):
    """See :class:`DataGapParams`."""

    kind: Literal["data_gap"]
    params: DataGapParams = DataGapParams()


class EstimatedShareRule(_Rule):
    """See :class:`EstimatedShareParams`."""

    kind: Literal["estimated_share"]
    params: EstimatedShareParams = EstimatedShareParams()


class CounterAnomalyRule(_Rule):
    """See :class:`CounterAnomalyParams`."""

    kind: Literal["counter_anomaly"]
    params: CounterAnomalyParams = CounterAnomalyParams()


class MeterBalanceRule(_Rule):
    """See :class:`MeterBalanceParams`."""

    kind: Literal["meter_balance"]
    params: MeterBalanceParams = MeterBalanceParams()


class PueLimitRule(_Rule):
    """See :class:`PueLimitParams`."""

    kind: Literal["pue_limit"]
    params: PueLimitParams = PueLimitParams()


class ContractedDemandRule(_Rule):
    """See :class:`ContractedDemandParams`."""

    kind: Literal["contracted_demand"]
    params: ContractedDemandParams = ContractedDemandParams()


class UplinkBacklogRule(_Rule):
    """See :class:`UplinkBacklogParams`."""

    kind: Literal["uplink_backlog"]
    params: UplinkBacklogParams = UplinkBacklogParams()


Rule = Annotated[DeviceOfflineRule | DataGapRule | EstimatedShareRule | CounterAnomalyRule | MeterBalanceRule
                 | PueLimitRule | ContractedDemandRule | UplinkBacklogRule, Field(discriminator="kind")]
_RULE: Final[TypeAdapter[Rule]] = TypeAdapter(Rule)
Override = dict[str, Any]


class RulesFile(BaseModel):
    """A rules file: the rules, and per-park overrides (park id → rule id → fields to change)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    rules: Annotated[list[Rule], Field(min_length=1)]
    parks: dict[Annotated[str, Field(min_length=1, max_length=64)], dict[RuleId, Override]] = Field(
        default_factory=dict)
    source: str = BUILTIN

    @model_validator(mode="after")
    def _ids_unique(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice; give each rule its own id")
            seen.add(rule.id)
        return self

    def rule(self, rule_id: str) -> Rule | None:
        """The file's rule with that id, or None."""
        return next((r for r in self.rules if r.id == rule_id), None)


_KINDS: Final = frozenset({"device_offline", "data_gap", "estimated_share", "counter_anomaly", "meter_balance",
                           "pue_limit", "contracted_demand", "uplink_backlog"})


def _where(loc: tuple[int | str, ...], doc: Any) -> str:
    """``rules[2] (device_offline).params.intervals`` from a pydantic error location and the raw document."""
    text, node, tagged = "", doc, False
    for item in loc:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            text += f"[{item}]"
            if isinstance(node, Mapping) and isinstance(node.get("id"), str):
                text += f" ({node['id']})"
            tagged = isinstance(node, Mapping) and "kind" in node
            continue
        if tagged and item in _KINDS:
            tagged = False  # the union's discriminator tag: the rule is already named
            continue
        tagged = False
        text += f".{item}" if text else str(item)
        node = node.get(item) if isinstance(node, Mapping) else None
    return text or "(top level)"


def _problems(exc: ValidationError, doc: Any) -> list[str]:
    return [f"{_where(tuple(e['loc']), doc)}: {e['msg']}" for e in exc.errors()]


def parse_rules(text: str, source: str) -> RulesFile:
    """Parse and validate a rules file's text; every park override is checked too.

    Raises:
        AlarmRulesError: with one problem per invalid field, each naming where it is.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise AlarmRulesError(source, [f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                                       "fix the syntax (compare alarms/data/alarm_rules.yaml)"]) from None
    if not isinstance(doc, dict):
        raise AlarmRulesError(source, ["the file must be a mapping with `version: 1` and `rules:` "
                                       "(see alarms/data/alarm_rules.yaml)"])
    try:
        rules = RulesFile.model_validate({**doc, "source": source})
    except ValidationError as exc:
        raise AlarmRulesError(source, _problems(exc, doc)) from None
    for park_id, overrides in rules.parks.items():
        apply_overrides(rules.rules, overrides, f"{source}: parks.{park_id}")
    return rules


def load_rules(path: Path | None = None) -> RulesFile:
    """The rules file at ``path``, or the built-in one; raises :class:`AlarmRulesError`."""
    if path is None:
        text = resources.files("alarms").joinpath("data/alarm_rules.yaml").read_text(encoding="utf-8")
        return parse_rules(text, BUILTIN)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AlarmRulesError(str(path), [f"cannot read the rules file ({exc}); check the path "
                                          "(PARKPULSE_ALARMS_RULES_FILE or --rules)"]) from None
    return parse_rules(text, str(path))


def _merge(base: dict[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` laid over it; nested mappings merge, everything else is replaced."""
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def override_rule(rule: Rule, override: Mapping[str, Any], where: str) -> Rule:
    """``rule`` with one park's override applied; raises :class:`AlarmRulesError` naming the field."""
    problems = [f"rules.{rule.id}.{key}: cannot be overridden (only {', '.join(OVERRIDABLE)} and params)"
                for key in override if key not in (*OVERRIDABLE, "params")]
    if problems:
        raise AlarmRulesError(where, problems)
    params = override.get("params", {})
    if not isinstance(params, Mapping):
        raise AlarmRulesError(where, [f"rules.{rule.id}.params: must be a mapping of parameter names to values"])
    merged = _merge(rule.model_dump(mode="python"), override)
    try:
        return _RULE.validate_python(merged)
    except ValidationError as exc:
        raise AlarmRulesError(where, [f"rules.{rule.id}.{_where(tuple(e['loc'])[1:], merged)}: {e['msg']}"
                                      for e in exc.errors()]) from None


def apply_overrides(rules: list[Rule], overrides: Mapping[str, Mapping[str, Any]], where: str) -> list[Rule]:
    """Every rule with its override (if any) applied; an override of an unknown rule is an error."""
    known = {r.id for r in rules}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise AlarmRulesError(where, [f"no rule {u!r} to override (rules: {', '.join(sorted(known))})"
                                      for u in unknown])
    return [override_rule(r, overrides[r.id], where) if r.id in overrides else r for r in rules]


def effective_rules(rules: RulesFile, park_id: str, db_overrides: Mapping[str, Mapping[str, Any]]) -> list[Rule]:
    """The rules in effect for one park: the file's rules, its ``parks:`` entry, then the database's."""
    merged: dict[str, dict[str, Any]] = {rule_id: dict(change)
                                         for rule_id, change in rules.parks.get(park_id, {}).items()}
    for rule_id, override in db_overrides.items():
        merged[rule_id] = _merge(merged.get(rule_id, {}), override)
    return apply_overrides(rules.rules, merged, f"park {park_id}")


def parse_assignment(text: str) -> tuple[str, Override]:
    """``RULE.FIELD=VALUE`` (``--set``) as (rule id, override); FIELD is a rule field or a parameter.

    The value is read as YAML (``3000``, ``null``, ``true``, ``[spike]``); a dotted parameter path sets a
    nested one (``pue_limit.sites.dc-1=new``).
    """
    target, sep, raw = text.partition("=")
    rule_id, dot, field = target.strip().partition(".")
    if not sep or not dot or not rule_id or not field:
        raise AlarmRulesError("--set", [f"{text!r}: write RULE.FIELD=VALUE, e.g. "
                                        "contracted_demand.contracted_demand_kw=3000"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise AlarmRulesError("--set", [f"{text!r}: the value is not a YAML scalar or list; quote it"]) from None
    path = field.split(".")
    if any(not p for p in path):
        raise AlarmRulesError("--set", [f"{text!r}: empty part in the field name {field!r}"])
    if path[0] == "params":
        path = path[1:]
    elif len(path) == 1 and path[0] in OVERRIDABLE:
        return rule_id, {path[0]: value}
    if not path:
        raise AlarmRulesError("--set", [f"{text!r}: name the parameter, e.g. {rule_id}.params.NAME=VALUE"])
    node: Any = value
    for key in reversed(path):
        node = {key: node}
    return rule_id, {"params": node}


def merge_override(current: Mapping[str, Any], change: Mapping[str, Any]) -> Override:
    """Two overrides of one rule combined (``change`` wins), as stored in ``alarm_rule_overrides``."""
    return _merge(dict(current), change)
