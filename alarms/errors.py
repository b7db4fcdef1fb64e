"""The root of the alarms package's exceptions.

Hierarchy::

    AlarmsPackageError
    ├── TargetError    targets, projections and 预警 levels (alarms._targets_errors)
    ├── AlarmError     alarm rules, their evaluation and the lifecycle (alarms._rules_errors)
    └── NotifyError    notification configuration and delivery (alarms._notify_errors)

Catch :class:`AlarmsPackageError` to handle anything this package raises on purpose.
"""

from __future__ import annotations


class AlarmsPackageError(Exception):
    """Base class of every error the alarms package raises on purpose."""
