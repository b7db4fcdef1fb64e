"""Settings of ``parkpulse vpp run`` (``PARKPULSE_VPP_*``): which VENs run, for which parks, and live M&V timing.

The VENs' own connection settings (VTN URL, VEN name, certificates) and the dispatcher's broker account stay
in their components' settings; this object only says what the service starts and how often M&V measures.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infra.settings import ServiceSettings


class VppSettings(ServiceSettings):
    """What ``parkpulse vpp run`` reads from the environment or ``.cache/services.env``."""

    vpp_vens: list[Literal["oadr2", "oadr3"]] = Field(
        default=["oadr2"], description="VENs to run (PARKPULSE_VPP_VENS='[\"oadr2\",\"oadr3\"]')")
    vpp_park_ids: list[str] = Field(default_factory=list, description="parks whose availability is reported")
    vpp_mv_tick_s: float = Field(default=5.0, gt=0, le=300, description="seconds between live M&V passes")
    vpp_mv_settle_s: float = Field(default=10.0, ge=0, le=600,
                                   description="seconds after an interval ends before its readings count")
    vpp_dispatch: bool = Field(default=True, description="run the dispatcher (off: measure and report only)")
