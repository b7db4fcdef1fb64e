"""Report files: the monthly park report as Excel and PDF, in Chinese and English, and per-meter energy.

A monthly report shows one park-month as a reviewer of the pilot-programme office receives it: the
indicators on both coal-equivalent bases, carbon and 综合能耗 by source, every meter's energy with its
quality, the GB 17167 balance, data-quality figures and charts (daily energy per carrier, electricity load
duration, PUE). Everything is read from what the aggregation jobs stored, never recomputed.

Layout: ``_gather`` (database → :class:`MonthlyData`), ``_data`` (the values and pure shaping),
``_labels`` (bilingual labels), ``_charts`` (matplotlib), ``_xlsx`` (XlsxWriter), ``_pdf`` (ReportLab),
``_fonts`` (the CJK font), ``_monthly`` (one file end to end), ``_schedule`` (files after each month
closes), ``_energy_formats`` and ``_cli`` (``parkpulse report energy|monthly|fonts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from infra.lazy import lazy_exports

if _TYPE_CHECKING:
    from reports._data import MonthlyData
    from reports._fonts import CjkFont, find_cjk_font, install_font_package
    from reports._gather import gather_month, park_row
    from reports._monthly import ReportFile, build_monthly, render
    from reports._schedule import WrittenReport, closed_months, write_due_reports
    from reports.errors import FontNotFoundError, ReportError, ReportPeriodError, UnknownParkError

__all__ = [
    "CjkFont",
    "FontNotFoundError",
    "MonthlyData",
    "ReportError",
    "ReportFile",
    "ReportPeriodError",
    "UnknownParkError",
    "WrittenReport",
    "build_monthly",
    "closed_months",
    "find_cjk_font",
    "gather_month",
    "install_font_package",
    "park_row",
    "render",
    "write_due_reports",
]

#: XlsxWriter, ReportLab, matplotlib and psycopg load on first use of a name, so `import reports` stays light.
__getattr__ = lazy_exports(__name__, {
    "CjkFont": "reports._fonts",
    "FontNotFoundError": "reports.errors",
    "MonthlyData": "reports._data",
    "ReportError": "reports.errors",
    "ReportFile": "reports._monthly",
    "ReportPeriodError": "reports.errors",
    "UnknownParkError": "reports.errors",
    "WrittenReport": "reports._schedule",
    "build_monthly": "reports._monthly",
    "closed_months": "reports._schedule",
    "find_cjk_font": "reports._fonts",
    "gather_month": "reports._gather",
    "install_font_package": "reports._fonts",
    "park_row": "reports._gather",
    "render": "reports._monthly",
    "write_due_reports": "reports._schedule",
})
