"""ParkPulse: IoT energy and carbon metering for industrial parks.

This package is the top layer: the ``parkpulse`` command line (:mod:`parkpulse.cli`), the demo and the
local-services manager. Everything it runs lives below it: the services in ``edge``, ``ingest``,
``aggregation``, ``simulators``, ``flex``, ``api`` and ``dashboards``, shared infrastructure in ``infra``,
and the contracts in ``schemas`` (README: "Layout").
"""

__version__ = "0.1.0"
