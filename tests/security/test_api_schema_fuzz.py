"""Schemathesis over the live OpenAPI spec of a real uvicorn (`web_process`): generated requests for
every operation, valid ones and schema-violating ones, never get a 5xx, and every response matches
the documented schema, status codes and content types.

Bounded: MAX_EXAMPLES per operation and mode (well under a minute on 2 CPU cores). The operations are
walked inside the test (schemathesis' pytest plugin does not load lazily under pytest 9). Schema-violating
requests are generated only for operations that have something a request could violate (``violable``):
for the others Hypothesis spends ~460 rejected draws before it gives up, whatever MAX_EXAMPLES is.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.stack import Stack

MAX_EXAMPLES = 40
# "Schema-valid data must be accepted" cannot hold here: a schema says "binary", not "a decodable
# image", so schema-valid random bytes are rightly refused (415), and the files are optional in the
# schema only so that the route can name a missing one itself. Every other check stays on.
EXCLUDED_CHECKS = [positive_data_acceptance]
# Schema keys that say nothing a value must satisfy.
ANNOTATIONS = {"title", "description"}
# The operations whose schema-violating requests must be tried (each has a body or a constrained parameter).
VIOLABLE = {"POST /api/jobs", "POST /api/plan", "POST /api/batches", "GET /api/jobs/{job_id}/result"}


@pytest.fixture(scope="module")
def api_schema(web_process: Stack) -> schemathesis.BaseSchema:
    # Real uvicorn with no worker and a queue cap out of reach: generated submissions stay queued
    # there and fill no shared stack's queue.
    return schemathesis.openapi.from_url(f"{web_process.base_url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_within_its_documented_contract(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8  # submit, status, result, preview, content, cancel, delete, health...
    if mode == GenerationMode.NEGATIVE:
        operations = [operation for operation in operations if violable(operation.definition.raw)]
        assert {operation.label for operation in operations} >= VIOLABLE

    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_within_contract(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=EXCLUDED_CHECKS, timeout=30)

        try:
            answers_within_contract()
        except Exception as failure:  # collected so one run reports every operation that fails
            failures[operation.label] = str(failure)[:3000]

    assert failures == {}


def violable(definition: dict) -> bool:
    """Whether a request can break this operation's schema: it has a body, or a query, header or
    cookie parameter, or a path parameter constrained beyond "a string" (any string is a valid path
    segment, so a plain string id has nothing to violate)."""
    return "requestBody" in definition or any(
        parameter["in"] != "path" or _constraints(parameter.get("schema", {})) not in ({}, {"type": "string"})
        for parameter in definition.get("parameters", [])
    )


def _constraints(schema: dict) -> dict:
    return {key: value for key, value in schema.items() if key not in ANNOTATIONS}
