"""Settings of the dispatcher (``PARKPULSE_VPP_DISPATCH_*``): its broker account and command timing.

The dispatcher connects as broker user ``vpp`` (deploy/mosquitto/parkpulse.acl: write ``…/+/+/cmd``, read
``…/+/+/ack``); give it as ``PARKPULSE_VPP_DISPATCH_MQTT_URL=mqtt://vpp:PASSWORD@broker:1883``. Without it the
shared ``PARKPULSE_MQTT_URL`` is used (a development broker without accounts).
"""

from __future__ import annotations

from pydantic import Field

from infra.settings import MqttEndpoint, ServiceSettings, parse_mqtt_url


class DispatchSettings(ServiceSettings):
    """What the dispatcher reads from the environment or ``.cache/services.env``."""

    vpp_dispatch_mqtt_url: str | None = Field(default=None, description="broker URL with the vpp account")
    vpp_dispatch_client_id: str = Field(default="parkpulse-vpp-dispatcher", min_length=1, max_length=64)
    vpp_dispatch_issued_by: str = Field(default="vpp-dispatcher", min_length=1, max_length=100)
    vpp_dispatch_expiry_s: float = Field(default=60.0, gt=0, le=3600,
                                         description="a command not applied this long after it was issued expires")
    vpp_dispatch_resend_s: float = Field(default=5.0, gt=0, le=600,
                                         description="resend an unacknowledged command after this long")
    vpp_dispatch_tick_s: float = Field(default=0.25, gt=0, le=10, description="scheduler resolution")
    vpp_dispatch_interval_minutes: float = Field(default=15.0, gt=0, le=60,
                                                 description="interval length when an event gives one target only")
    vpp_dispatch_backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    vpp_dispatch_backoff_max_s: float = Field(default=30.0, gt=0, le=600)

    @property
    def dispatch_mqtt(self) -> MqttEndpoint:
        """The broker endpoint the dispatcher connects to."""
        return parse_mqtt_url(self.vpp_dispatch_mqtt_url or self.mqtt_url)
