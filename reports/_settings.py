"""Settings of the report commands (``PARKPULSE_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

from pathlib import Path

from aggregation._settings import AggregationSettings


class ReportSettings(AggregationSettings):
    """The aggregation settings plus where the report font is (default: found among installed fonts)."""

    report_font_file: Path | None = None
