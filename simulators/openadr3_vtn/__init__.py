"""An OpenADR 3 VTN stand-in built from the OpenADR 3.0.1 OpenAPI document (vendored as ``openadr3.yaml``).

It serves the spec's REST API (OAuth2 client-credentials token, programs, events, subscriptions with
webhook notifications, reports, VENs) from memory, and validates every request and every response it gives
against the document's schemas: tests that talk to it prove a VEN speaks the spec, not just this code.
``parkpulse vpp vtn3-sim`` runs it; :func:`running_vtn3` runs it inside a test's event loop.
"""

from simulators.openadr3_vtn._admin import Vtn3Admin, event_body
from simulators.openadr3_vtn._app import make_vtn3_app
from simulators.openadr3_vtn._server import RunningVtn3, running_vtn3, serve_vtn3
from simulators.openadr3_vtn._spec import SPEC_PATH, OpenApiSpec, openadr3_spec, to_json_schema
from simulators.openadr3_vtn._state import BL_CLIENT_ID, BL_CLIENT_SECRET, Client, Notification, VtnState
from simulators.openadr3_vtn.errors import Vtn3Error, Vtn3StartError

__all__ = [
    "BL_CLIENT_ID",
    "BL_CLIENT_SECRET",
    "SPEC_PATH",
    "Client",
    "Notification",
    "OpenApiSpec",
    "RunningVtn3",
    "Vtn3Admin",
    "Vtn3Error",
    "Vtn3StartError",
    "VtnState",
    "event_body",
    "make_vtn3_app",
    "openadr3_spec",
    "running_vtn3",
    "serve_vtn3",
    "to_json_schema",
]
