"""API contract fuzzing of the operator routes (registry, meter events, imports, reports, calendars) on the
real database.

The DR contract test (test_contract.py) serves an in-memory park without a database, where these routes
answer 503 by design. Here the same app gets the migrated test database, and a read+write key scoped to a
park of this module's own, so the fuzzer reaches the SQL, the file parsers and the report builders. Every
response must match the OpenAPI document; 5xx other than a documented 503 fails.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api import MemoryKeyStore, build_app
from flex import DrService, MemoryRepository
from tests.api.fakes import OPERATOR_PATHS, FakeSettings

pytestmark = pytest.mark.services

PARK = f"contract-{uuid.uuid4().hex[:8]}"
_KEYS = MemoryKeyStore()
_, KEY = _KEYS.create("Operator", [PARK], scopes=("read", "write"))
APP = build_app(DrService(MemoryRepository()), _KEYS, FakeSettings())   # database_url is set by the fixture
_CHECKS = {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "413", "422"]}}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=schemathesis.Config.from_dict(
    {"checks": _CHECKS, "generation": {"mode": "positive"}})).include(path_regex=OPERATOR_PATHS)
_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(autouse=True)
def _database(database_url: str) -> None:
    APP.state.database_url = database_url


@schema.parametrize()
@_SETTINGS
def test_every_operator_operation_on_the_scoped_park(case):
    if "park_id" in (case.path_parameters or {}):
        case.path_parameters["park_id"] = PARK
    case.call_and_validate(headers={"X-API-Key": KEY})
