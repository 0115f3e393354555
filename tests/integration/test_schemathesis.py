"""Property-based API tests: schemathesis drives every operation of a real server's OpenAPI.

Each answer must be no 5xx, have a documented status code and content type, and match the
documented schema. The fuzzer runs as the admin of ``default``, so it reaches every route past
authentication; a random token id never matches the admin's own, so it cannot revoke itself.

The operations are collected from the app's OpenAPI built in-process (collection needs them
before any server runs); ``test_the_fuzzed_schema_is_the_served_one`` pins that document to
the ``/api/v1/openapi.json`` the real server serves, and every case is sent to that server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lepton.server.app import create_app
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

OPENAPI: dict[str, Any] = create_app(Settings()).openapi()
# schemathesis.Config(): nothing is discovered from a schemathesis.toml in the working tree.
schema = schemathesis.openapi.from_dict(OPENAPI, config=schemathesis.Config())


@pytest.fixture(scope="module")
def http(module_server: ServerProcess) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {module_server.token}"
        yield session


def test_the_fuzzed_schema_is_the_served_one(module_server: ServerProcess) -> None:
    served = httpx.get(f"{module_server.url}/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.json() == OPENAPI


@schema.parametrize()
# 25 examples per operation: the 13 operations finish in well under 2 minutes on 2 cores.
@settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, module_server: ServerProcess, http: requests.Session
) -> None:
    case.call_and_validate(base_url=module_server.url, session=http, checks=CHECKS)
