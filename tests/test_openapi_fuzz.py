"""Property-based fuzzing of every operation against the OpenAPI document (schemathesis).

Each operation gets a bounded number of generated requests (valid and invalid ones); every
response must be a non-5xx that the document describes (status, headers, body schema).
Generated writes use a token with every scope; the queue limit is raised so generated runs
only queue (no worker runs them) and rate limits are off so they do not mask other checks.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from service.openapi_spec import build_spec
from tests.api_fixtures import bearer, make_token

MAX_EXAMPLES = 20


@pytest.fixture
def fuzz_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(RATELIMIT_ENABLED=False, MAX_QUEUED_RUNS=100_000)


@pytest.fixture
def token_headers(fuzz_app: Flask) -> dict[str, str]:
    return bearer(make_token(fuzz_app, "ask,run,write", name="fuzzer"))


# Valid requests may also meet a stale (412) or missing (428) precondition: If-Match and
# the body's version are both optional, and one of them is required.
ACCEPTED = ["2xx", "401", "403", "404", "409", "412", "428", "429"]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        "operations": [
            {
                # EntryData's cross-field rules (question and answer in the same languages,
                # cited keys exist, unique citation keys, params valid for the experiment,
                # no control characters) are not expressible in JSON Schema, so a
                # schema-valid entry may still be refused with a 400 naming the field.
                "include-operation-id": operation_id,
                "checks": {"positive_data_acceptance": {"enabled": False}},
            }
            for operation_id in ("createEntry", "updateEntry")
        ],
    }
)
# The document is built without an app; each example is sent to a fresh test app (the
# fixture-based loader does not support this pytest version).
schema = schemathesis.openapi.from_dict(build_spec(), config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_document(
    case: schemathesis.Case, fuzz_app: Flask, token_headers: dict[str, str]
) -> None:
    # Bind this test's app: checks that re-send a request (e.g. without credentials) use it.
    case.operation.app = case.operation.schema.app = fuzz_app
    case.call_and_validate(headers=token_headers)
