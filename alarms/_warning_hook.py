"""The 预警 hook run after each ``parkpulse aggregate``: project every park's running targets and store the
level changes (each notified), reported as lines. It never raises, so the aggregation run it follows still
succeeds when targets cannot be judged; ``parkpulse targets evaluate`` shows the same with full errors."""

from __future__ import annotations

import psycopg

from alarms._targets_errors import TargetError
from alarms._warning import load_warning_policy
from alarms._warning_store import evaluate_parks


def after_aggregate(database_url: str) -> list[str]:
    """One line per level change, nothing when no park has targets or nothing changed."""
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            changes_by_park = evaluate_parks(conn, load_warning_policy())
    except TargetError as exc:
        return [f"targets: not evaluated ({exc}); run `parkpulse targets evaluate` for details"]
    except psycopg.Error as exc:
        return [f"targets: not evaluated ({exc.__class__.__name__}: {exc}); run `parkpulse targets evaluate`"]
    lines = []
    for park_id, changes in changes_by_park.items():
        for change in changes:
            k = change.key
            lines.append(f"预警 {park_id} {k.indicator} ({k.variant}) {k.period_label}: {change.previous or '—'} → "
                         f"{change.level} (projected/target {change.ratio:.3f})")
    return lines
