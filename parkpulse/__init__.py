"""ParkPulse: IoT energy and carbon metering for industrial parks.

This package holds what the services share: the ``parkpulse`` command line, local service management,
database migrations and logging set-up for entry points. The services themselves live in the top-level
packages ``edge``, ``ingest``, ``aggregation``, ``dashboards`` and ``simulators``; contracts in ``schemas``.
"""

__version__ = "0.1.0"
