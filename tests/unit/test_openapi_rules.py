"""Rules the API enforces are stated in its OpenAPI document, so a generated client (or a
schemathesis run) knows them: a token has a role or a scope, a deployment serves a model or a
photon, versions and aliases have a form, and a split's shares sum to 1."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def document(api: TestClient) -> dict[str, Any]:
    answer = api.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def valid(document: dict[str, Any], component: str, body: dict[str, Any]) -> bool:
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema).is_valid(body)


def test_a_token_has_a_role_or_a_scope_not_both(document: dict[str, Any]) -> None:
    assert valid(document, "TokenCreate", {"name": "ci", "role": "viewer"})
    assert valid(document, "TokenCreate", {"name": "ci", "role": None, "scope": "job:abc"})
    assert valid(document, "TokenCreate", {"name": "ci"})
    assert not valid(document, "TokenCreate", {"name": "ci", "role": "admin", "scope": "job:a"})


def test_a_deployment_serves_a_model_or_a_photon_exactly(document: dict[str, Any]) -> None:
    assert valid(document, "DeploymentCreate", {"model": "heart@3"})
    assert valid(document, "DeploymentCreate", {"photon": "echo", "model": None})
    assert not valid(document, "DeploymentCreate", {"model": "heart", "photon": "echo"})
    assert not valid(document, "DeploymentCreate", {"name": "web"})


def test_versions_and_aliases_state_their_form(document: dict[str, Any]) -> None:
    def pattern(path: str, method: str, name: str) -> re.Pattern[str]:
        params = document["paths"][path][method]["parameters"]
        schema = next(p["schema"] for p in params if p["name"] == name)
        return re.compile(schema["pattern"])

    dataset = pattern("/api/v1/datasets/{dataset_name}/versions/{version}", "get", "version")
    model = pattern("/api/v1/models/{model_name}/versions/{version}", "get", "version")
    alias = pattern("/api/v1/models/{model_name}/aliases/{alias}", "put", "alias")
    assert all(dataset.fullmatch(v) for v in ("3", "v3", "latest"))
    assert not any(dataset.fullmatch(v) for v in ("v", "3.0", "production", "3\n"))
    assert all(model.fullmatch(v) for v in ("3", "v12", "latest", "production"))
    assert not model.fullmatch("Prod!")
    assert alias.fullmatch("production") and alias.fullmatch("v2-canary")
    assert not any(alias.fullmatch(v) for v in ("9lives", "latest", "v3"))


def test_a_splits_shares_summing_to_one_is_stated(document: dict[str, Any]) -> None:
    split = document["components"]["schemas"]["SplitSpec"]
    assert "must be 1" in split["description"]
