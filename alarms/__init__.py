"""Targets and 双控预警 (projection against energy and carbon targets), operational alarms and notifications.

Layer 4 (with flex/, simulators/ and reports/): reads what aggregation and ingest stored, never imports a
package of its own layer or above. Targets and projections (``_targets``, ``_projection``, ``_warning``),
alarm rules and their lifecycle (``_rules``, ``_lifecycle``), and notification delivery (``_notify``) each
sit in their own modules; :mod:`alarms._notification` is the message they hand to delivery.
"""
