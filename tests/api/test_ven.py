"""The OpenADR 3 VEN posts ParkPulse reports to a local VTN with OAuth2 client credentials."""

from __future__ import annotations

import pytest

from api import (
    VenClient,
    VtnAuthError,
    VtnConfig,
    VtnRequestError,
    availability_report,
    event_report,
    payload_values,
)
from tests.api.fakes import EVENT_ID, PARK, fake_api
from tests.api.vtn import CLIENT_ID, CLIENT_SECRET, running_vtn


def _reports():
    fake = fake_api()
    forecast = fake.service.forecast_flex(PARK, n_slots=8, durations_h=[1.0])
    availability = availability_report(forecast, duration_h=1.0, program_id="prog-1", event_id="avail-1",
                                       client_name="park-a-ven", park_id=PARK)
    event = event_report(fake.service.repo.get_intervals(EVENT_ID), program_id="prog-1", event_id="vtn-evt-9",
                         client_name="park-a-ven", park_id=PARK, local_event_id=EVENT_ID)
    return availability, event


@pytest.mark.parametrize("auth_method", ["basic", "post"])
def test_ven_posts_reports_with_a_cached_token(auth_method):
    availability, event = _reports()
    with running_vtn() as (url, vtn):
        config = VtnConfig(base_url=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, auth_method=auth_method)
        with VenClient(config) as ven:
            first = ven.post_report(availability)
            second = ven.post_report(event)
    assert (first["id"], second["id"]) == ("report-1", "report-2")
    assert vtn.token_requests == 1  # one token for both reports
    received_avail, received_event = vtn.reports
    # Battery 1000 kWh at 50 %, 250 kW: 1 h up = min(250, 400) = 250 kW in every slot.
    assert payload_values(received_avail, "UP_REGULATION_AVAILABLE") == pytest.approx([250.0] * 8)
    assert received_event["eventID"] == "vtn-evt-9"
    assert payload_values(received_event, "BASELINE") == pytest.approx([250.0] * 8)
    assert payload_values(received_event, "USAGE") == pytest.approx([200.0] * 8)


def test_ven_refreshes_a_rejected_token_once():
    availability, _ = _reports()
    with running_vtn() as (url, vtn), \
            VenClient(VtnConfig(base_url=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as ven:
        ven.post_report(availability)
        vtn.reject_next_with_401 = True
        ven.post_report(availability)
    assert vtn.token_requests == 2
    assert len(vtn.reports) == 2


def test_ven_errors():
    availability, _ = _reports()
    with running_vtn() as (url, _vtn):
        with VenClient(VtnConfig(base_url=url, client_id=CLIENT_ID, client_secret="wrong")) as ven, \
                pytest.raises(VtnAuthError, match="401"):
            ven.post_report(availability)
        with VenClient(VtnConfig(base_url=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as ven:
            broken = {k: v for k, v in availability.items() if k != "eventID"}
            with pytest.raises(VtnRequestError) as info:
                ven.post_report(broken)
            assert info.value.status == 400
    with VenClient(VtnConfig(base_url="http://127.0.0.1:9", client_id="a", client_secret="b",
                             timeout_s=2)) as ven, pytest.raises(VtnAuthError):
        ven.post_report(availability)
