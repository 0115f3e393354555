"""Workspace isolation, checked on every operation of the OpenAPI document.

The operations are read from the app's own schema, so a route added later is covered without
touching this file. What a new route may need is an entry in ``RESOURCES`` (for a new path
parameter) and perhaps one in ``BODIES`` (when the generic body below is not valid for it).

Two workspaces, ``alpha-ws`` (A) and ``bravo-ws`` (B), each get admin, editor and viewer tokens
and one resource of every kind. Then, for every operation:

* with no token it is 401 (only ``/healthz`` is public);
* with a path parameter, A's admin asking for B's resource is told what it would be told for a
  resource that never existed (404), and B's admin is not (so the ids are real);
* without one, a GET answer to A never mentions any of B's ids;
* a mutating operation is 403 for A's viewer, even on A's own resources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from lepton.control.workspaces import FirstStart
from lepton.server.app import create_app
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import Platform

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC = frozenset({("GET", "/healthz")})
"""Operations that answer without a token."""


@dataclass
class Tenant:
    """One workspace: its tokens by role and one resource id per path-parameter name."""

    name: str
    tokens: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def token_ids(self) -> set[str]:
        return {token.split("_")[1] for token in self.tokens.values()}


@dataclass(frozen=True)
class Resource:
    """How to make a resource for a path parameter, and an id that names none."""

    create: Callable[[Platform, Tenant], str]
    missing: str
    distinctive: bool = True
    """False for ids that are the same in every workspace (version "1"), which say nothing."""


def _make_token(platform: Platform, tenant: Tenant) -> str:
    info = platform.token_info(tenant.tokens["admin"], role="viewer", name=f"{tenant.name}-probe")
    token_id: str = info["id"]
    return token_id


def _make_blob(platform: Platform, tenant: Tenant) -> str:
    r = platform.api.post(
        "/api/v1/blobs", content=f"only in {tenant.name}".encode(), headers=tenant.headers("admin")
    )
    assert r.status_code == 201, r.text
    digest: str = r.json()["digest"]
    return digest


def _make_dataset(platform: Platform, tenant: Tenant) -> str:
    name = f"{tenant.name}-data"
    r = platform.api.post(
        f"/api/v1/datasets/{name}/versions",
        params={"source_name": "data.csv"},
        content=f"x,label\n1,a\n2,b\n3,a\n4,{tenant.name}\n".encode(),
        headers=tenant.headers("admin"),
    )
    assert r.status_code == 201, r.text
    return name


def _make_job(platform: Platform, tenant: Tenant) -> str:
    # In-process apps run no scheduler, so the job stays as submitted: enough to address it.
    r = platform.api.post(
        "/api/v1/jobs",
        json={"spec": {"kind": "train", "dataset": f"{tenant.name}-data", "target": "label"}},
        headers=tenant.headers("admin"),
    )
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    return job_id


def _make_model(platform: Platform, tenant: Tenant) -> str:
    import io
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("config.json", '{"algorithm": "logistic_regression"}')
    r = platform.api.post(
        "/api/v1/blobs", content=packed.getvalue(), headers=tenant.headers("admin")
    )
    assert r.status_code == 201, r.text
    name = f"{tenant.name}-model"
    body = {
        "artifact_digest": r.json()["digest"],
        "flavour": "sklearn",
        "algorithm": "logistic_regression",
        "task": "classification",
        "signature": {},
    }
    r = platform.api.post(
        f"/api/v1/models/{name}/versions", json=body, headers=tenant.headers("admin")
    )
    assert r.status_code == 201, r.text
    return name


def _make_alias(platform: Platform, tenant: Tenant) -> str:
    r = platform.api.put(
        f"/api/v1/models/{tenant.name}-model/aliases/live",
        json={"version": "1"},
        headers=tenant.headers("admin"),
    )
    assert r.status_code == 200, r.text
    return "live"


def _make_split(platform: Platform, tenant: Tenant) -> str:
    r = platform.api.post(
        f"/api/v1/datasets/{tenant.name}-data/versions/1/splits",
        json={"train": 0.5, "validation": 0.0, "test": 0.5, "strategy": "random"},
        headers=tenant.headers("admin"),
    )
    assert r.status_code == 200, r.text
    digest: str = r.json()["digest"]
    return digest


def _make_deployment(platform: Platform, tenant: Tenant) -> str:
    # In-process apps run no supervisor: the deployment is recorded, nothing starts.
    name = f"{tenant.name}-serve"
    r = platform.api.post(
        "/api/v1/deployments",
        json={"name": name, "model": f"{tenant.name}-model"},
        headers=tenant.headers("admin"),
    )
    assert r.status_code == 201, r.text
    return name


def _make_photon(platform: Platform, tenant: Tenant) -> str:
    import io
    import zipfile

    name = f"{tenant.name}-photon"
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("manifest.json", f'{{"name": "{name}", "entry": "svc.py:Svc"}}')
        archive.writestr("svc.py", "class Svc:\n    pass\n")
    r = platform.api.post(
        "/api/v1/photons", content=packed.getvalue(), headers=tenant.headers("admin")
    )
    assert r.status_code == 201, r.text
    return name


def _make_secret(platform: Platform, tenant: Tenant) -> str:
    name = tenant.name.replace("-", "_").upper() + "_KEY"
    r = platform.api.put(
        f"/api/v1/secrets/{name}",
        json={"value": f"value of {tenant.name}"},
        headers=tenant.headers("admin"),
    )
    assert r.status_code == 200, r.text
    return name


RESOURCES: dict[str, Resource] = {
    "workspace_name": Resource(lambda platform, tenant: tenant.name, missing="no-such-ws"),
    "token_id": Resource(_make_token, missing="0123456789abcdef"),
    "digest": Resource(_make_blob, missing="0" * 64),
    "dataset_name": Resource(_make_dataset, missing="no-such-data"),
    # Versions are numbered per dataset, so B's "1" names something only next to B's dataset.
    "version": Resource(lambda platform, tenant: "1", missing="999", distinctive=False),
    "split_digest": Resource(_make_split, missing="0" * 64),
    "job_id": Resource(_make_job, missing="0123456789ab"),
    "model_name": Resource(_make_model, missing="no-such-model"),
    # Aliases are named per model, like versions: "live" names something only next to B's model.
    "alias": Resource(_make_alias, missing="no-such-alias", distinctive=False),
    "model_ref": Resource(lambda platform, tenant: f"{tenant.name}-model@1", missing="none@1"),
    "dataset_ref": Resource(lambda platform, tenant: f"{tenant.name}-data@v1", missing="none@v1"),
    "deployment_name": Resource(_make_deployment, missing="no-such-deployment"),
    "photon_name": Resource(_make_photon, missing="no-such-photon"),
    "secret_name": Resource(_make_secret, missing="NO_SUCH_SECRET"),
}
"""Path-parameter name -> how to make one in a workspace. A new parameter needs an entry here."""

CREATES_BY_NAME = frozenset({"dataset_push", "model_register", "secret_put"})
"""Operations whose path names a resource the caller creates in its own workspace if absent."""

BODIES: dict[str, Any] = {
    # Empty: a valid value would make A a secret of B's name, which A's DELETE of that name
    # would then find (a 200, not the 404 the check expects). The 422 is the same for both.
    "secret_put": {"value": ""},
    "model_alias_set": {"version": "1"},
    "dataset_transform": {"steps": [{"op": "drop", "columns": ["x"]}]},
    "dataset_split": {"train": 0.5, "validation": 0.0, "test": 0.5, "strategy": "random"},
    "job_rendezvous_put": {"attempt": 1, "address": "127.0.0.1:4000"},
    "job_register_model": {
        "artifact_digest": "0" * 64,
        "flavour": "sklearn",
        "algorithm": "logistic_regression",
        "task": "classification",
        "signature": {},
    },
}
"""operationId -> request body, for operations whose generic body (``example``) is not valid."""


# --- the operations, read from the schema the app serves ----------------------------------


def _schema() -> dict[str, Any]:
    # Building the schema needs no lifespan: nothing is opened under this home.
    doc: dict[str, Any] = create_app(Settings(home=Path("/nonexistent/lepton"))).openapi()
    return doc


DOC = _schema()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


OPERATIONS = [
    Operation(method.upper(), path, spec)
    for path, item in DOC["paths"].items()
    for method, spec in item.items()
    if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}
]
GUARDED = [op for op in OPERATIONS if (op.method, op.path) not in PUBLIC]
WITH_PARAMS = [op for op in GUARDED if op.params]
# The gateway's routes list nothing of a workspace: where the gateway listens, and the routing
# table, which only the gateway's own secret reads (a workspace token gets 403; tested in
# test_gateway_routes.py).
LISTINGS = [
    op
    for op in GUARDED
    if op.method == "GET" and not op.params and not op.path.startswith("/api/v1/gateway")
]
MUTATIONS = [op for op in GUARDED if op.method in MUTATING]


def _ids(ops: list[Operation]) -> list[str]:
    return [op.id for op in ops]


def example(schema: dict[str, Any]) -> Any:
    """A minimal value valid for ``schema``: required fields only, first choices."""
    if "$ref" in schema:
        return example(DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return example(options[0])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example(props[name]) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema["items"])] if schema.get("minItems") else []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2030-01-01T00:00:00Z"
    return "probe1"  # fits the name patterns: lower-case, digits, starts with a letter


def request(api: TestClient, op: Operation, ids: dict[str, str], headers: dict[str, str]) -> Any:
    """Call ``op`` with path parameters from ``ids`` and a minimal valid body and query."""
    path = op.path
    for name in op.params:
        if name not in RESOURCES:
            pytest.fail(
                f"{op.id} has path parameter '{name}' that tests/unit/test_isolation.py cannot "
                f"fill: add RESOURCES['{name}'] = Resource(create=..., missing=...) so the "
                "isolation checks cover this route"
            )
        path = path.replace(f"{{{name}}}", ids[name])
    query = {
        p["name"]: example(p.get("schema", {}))
        for p in op.spec.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    content = op.spec.get("requestBody", {}).get("content", {})
    kwargs: dict[str, Any] = {}
    if op.spec["operationId"] in BODIES:
        kwargs["json"] = BODIES[op.spec["operationId"]]
    elif "application/json" in content:
        kwargs["json"] = example(content["application/json"]["schema"])
    elif content:
        kwargs["content"] = b"probe bytes"
        headers = headers | {"Content-Type": next(iter(content))}
    return api.request(op.method, path, params=query, headers=headers, **kwargs)


# --- the two workspaces --------------------------------------------------------------------


def make_tenant(platform: Platform, name: str) -> Tenant:
    admin = platform.workspace(name)
    tokens = {
        "admin": admin,
        "editor": platform.token(admin, role="editor", name=f"{name}-editor"),
        "viewer": platform.token(admin, role="viewer", name=f"{name}-viewer"),
    }
    tenant = Tenant(name=name, tokens=tokens)
    for param, resource in RESOURCES.items():
        tenant.ids[param] = resource.create(platform, tenant)
    return tenant


@dataclass(frozen=True)
class World:
    a: Tenant
    b: Tenant

    def b_secrets(self) -> set[str]:
        """Strings that name something of B's and must never reach A."""
        ids = (v for k, v in self.b.ids.items() if RESOURCES[k].distinctive)
        return {self.b.name, *self.b.token_ids(), *ids}


# One app and one world per module: building two tenants with a resource of every kind costs
# about a second, and there are ~150 checks. The checks change nothing but B's own calls, and
# B's own DELETEs are replaced by a GET of the same path (see `own_request`).


def _app_client(home: Path) -> Iterator[tuple[TestClient, str]]:
    tokens: list[str] = []

    def on_start(state: object, first: FirstStart | None) -> None:
        if first is not None:
            tokens.append(first.token)

    with TestClient(create_app(Settings(home=home), on_start=on_start, run_jobs=False)) as client:
        yield client, tokens[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    yield from _app_client(tmp_path_factory.mktemp("isolation"))


@pytest.fixture(scope="module")
def api(served: tuple[TestClient, str]) -> TestClient:
    return served[0]


@pytest.fixture(scope="module")
def world(served: tuple[TestClient, str], platform_class: type[Platform]) -> World:
    platform = platform_class(api=served[0], admin=served[1])
    return World(a=make_tenant(platform, "alpha-ws"), b=make_tenant(platform, "bravo-ws"))


@pytest.fixture(scope="module")
def untouched(
    tmp_path_factory: pytest.TempPathFactory, platform_class: type[Platform]
) -> Iterator[tuple[TestClient, World]]:
    """A second app and world that only the listing checks read: A's own audit log elsewhere
    records the ids of B that A asked for, which is A's doing, not a leak."""
    for client, admin in _app_client(tmp_path_factory.mktemp("listings")):
        platform = platform_class(api=client, admin=admin)
        yield (
            client,
            World(a=make_tenant(platform, "alpha-ws"), b=make_tenant(platform, "bravo-ws")),
        )


def b_versions(api: TestClient, world: World) -> list[str]:
    """B's dataset and model versions, as B sees them."""
    refs = []
    for path in (
        f"/api/v1/datasets/{world.b.ids['dataset_name']}/versions",
        f"/api/v1/models/{world.b.ids['model_name']}/versions",
    ):
        refs += [v["ref"] for v in api.get(path, headers=world.b.headers("admin")).json()]
    return refs


def own_request(api: TestClient, op: Operation, world: World) -> Any:
    """B's admin calling ``op`` on B's own resources; a DELETE is asked as a GET of the same
    path, so the shared world keeps its resources for the checks that follow."""
    if op.method == "DELETE" and any(o.path == op.path and o.method == "GET" for o in OPERATIONS):
        op = next(o for o in OPERATIONS if o.path == op.path and o.method == "GET")
    return request(api, op, world.b.ids, world.b.headers("admin"))


# --- the checks ----------------------------------------------------------------------------


def test_the_served_schema_is_the_one_these_tests_cover(api: TestClient) -> None:
    served = api.get("/api/v1/openapi.json").json()

    assert sorted(served["paths"]) == sorted(DOC["paths"])
    assert len(WITH_PARAMS) >= 3 and len(LISTINGS) >= 4 and len(MUTATIONS) >= 3


def test_every_path_parameter_has_a_resource_factory() -> None:
    missing = sorted(
        f"'{name}' in {op.id}" for op in OPERATIONS for name in op.params if name not in RESOURCES
    )

    assert not missing, (
        "add RESOURCES[name] = Resource(create=..., missing=...) in tests/unit/test_isolation.py "
        f"for each path parameter without one, so the isolation checks cover it: {missing}"
    )


@pytest.mark.parametrize("op", GUARDED, ids=_ids(GUARDED))
def test_every_operation_needs_a_token(api: TestClient, op: Operation) -> None:
    ids = {name: resource.missing for name, resource in RESOURCES.items()}

    r = request(api, op, ids, headers={})

    assert r.status_code == 401, f"{op.id} answered {r.status_code} without a token: {r.text}"


@pytest.mark.parametrize("op", WITH_PARAMS, ids=_ids(WITH_PARAMS))
def test_another_workspaces_resource_is_indistinguishable_from_a_missing_one(
    api: TestClient, world: World, op: Operation
) -> None:
    # A's admin is the strongest token of A. Its answer for B's id must be the answer for an
    # id that names nothing: 404. A 403 would be acceptable only on a route that refuses A
    # whatever the id (say one reserved to admins of `default`, decided before any lookup),
    # because then it, too, equals the answer for a made-up id and tells A nothing about B.
    # Every parameterised route today looks up within the caller's workspace and answers 404.
    missing = {name: resource.missing for name, resource in RESOURCES.items()}

    b_before = b_versions(api, world)
    for_b = request(api, op, world.b.ids, world.a.headers("admin"))
    for_nothing = request(api, op, missing, world.a.headers("admin"))

    if op.spec["operationId"] in CREATES_BY_NAME:
        # The name is a key in the caller's own namespace: A pushing to "B's" name works on A's
        # dataset of that name, exactly as for a name nobody uses, and B's is left untouched.
        assert b_versions(api, world) == b_before
    else:
        assert for_b.status_code in (403, 404), f"{op.id} let A reach B's resource: {for_b.text}"
    assert (for_b.status_code, for_b.json()["error"]["code"]) == (
        for_nothing.status_code,
        for_nothing.json()["error"]["code"],
    ), f"{op.id} answers A differently for B's resource than for a missing one"
    for secret in world.b_secrets() - set(world.b.ids.values()):
        assert secret not in for_b.text, f"{op.id} told A about B's {secret!r}"

    # The ids are real: B's own admin is not told they are missing.
    own = own_request(api, op, world)
    # A 404 for B is fine when it is about something else (a job with no checkpoint yet).
    assert own.status_code != 404 or own.json()["error"]["message"] != for_b.json()["error"][
        "message"
    ].replace(world.a.name, world.b.name), f"B's own {op.id} is 404, so this check proves nothing"


@pytest.mark.parametrize("op", LISTINGS, ids=_ids(LISTINGS))
def test_listings_never_mention_another_workspace(
    untouched: tuple[TestClient, World], op: Operation
) -> None:
    api, world = untouched
    secrets = world.b_secrets()

    for role in ("admin", "editor", "viewer"):
        r = request(api, op, {}, world.a.headers(role))
        assert r.status_code in (200, 403), f"{op.id} as A's {role}: {r.status_code} {r.text}"
        leaked = sorted(s for s in secrets if s in r.text)
        assert not leaked, f"{op.id} shows A's {role} these ids of workspace B: {leaked}"

    # The same listing for B does show B's things, so the check above can catch a leak.
    own = request(api, op, {}, world.b.headers("admin"))
    assert own.status_code == 200, own.text
    assert any(s in own.text for s in secrets), (
        f"{op.id} shows B's admin none of B's ids; if this route lists nothing per workspace, "
        "exclude it from LISTINGS in tests/unit/test_isolation.py with a reason"
    )


@pytest.mark.parametrize("op", MUTATIONS, ids=_ids(MUTATIONS))
def test_a_viewer_cannot_change_anything(api: TestClient, world: World, op: Operation) -> None:
    def audit() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = api.get(
            "/api/v1/audit", headers=world.a.headers("admin")
        ).json()
        return events

    seen = {e["id"] for e in audit()}

    r = request(api, op, world.a.ids, world.a.headers("viewer"))

    assert r.status_code == 403, f"{op.id} as A's viewer: {r.status_code} {r.text}"
    assert r.json()["error"]["code"] == "permission_denied"
    new = [e for e in audit() if e["id"] not in seen]
    assert [(e["actor_name"], e["outcome"], e["status_code"]) for e in new] == [
        ("alpha-ws-viewer", "denied", 403)
    ]
