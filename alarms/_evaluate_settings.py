"""Settings of the alarm evaluator (``PARKPULSE_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from infra.settings import ServiceSettings


class AlarmSettings(ServiceSettings):
    """Where the rules are and how often every park is re-judged even when none of its data changed.

    Time alone can make a condition true (a device falls silent), so each park is evaluated at least every
    ``alarms_recheck_minutes``; data changes (the change log, last wills, rule overrides) make it due at once.
    """

    mqtt_url: str = ""  # the evaluator never talks to the broker; the base class requires the field
    alarms_rules_file: Path | None = None                              # default: the built-in alarm_rules.yaml
    alarms_recheck_minutes: float = Field(default=15.0, gt=0, le=1440)
    aggregation_interval_minutes: int = Field(default=15, ge=1, le=60)  # same setting as aggregation's
