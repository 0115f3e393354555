"""The web console without a browser: sign-in and its cookie, CSRF on every write, roles,
workspace isolation, escaping, and the pages a user reads."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from conftest import Platform

HTML = {"Accept": "text/html"}


def sign_in(api: TestClient, token: str) -> TestClient:
    answer = api.post("/signin", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"
    return api


def csrf(api: TestClient, path: str = "/") -> str:
    page = api.get(path, headers=HTML)
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_a_page_without_a_session_goes_to_sign_in(api: TestClient) -> None:
    answer = api.get("/datasets", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    form = api.get("/signin")
    assert form.status_code == 200 and 'name="token"' in form.text


def test_signing_in_sets_an_httponly_strict_cookie_and_shows_the_workspace(
    api: TestClient, platform: Platform
) -> None:
    answer = api.post("/signin", data={"token": platform.admin}, follow_redirects=False)

    cookie = answer.headers["set-cookie"]
    assert "lepton_session=lep_" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert platform.admin not in cookie, "the cookie holds a session token, not the one given"
    page = api.get("/", headers=HTML)
    assert page.status_code == 200
    assert '<strong id="workspace">default</strong>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_a_wrong_token_is_refused_on_the_form(api: TestClient) -> None:
    answer = api.post("/signin", data={"token": "lep_nope_nope"})
    assert answer.status_code == 401
    assert 'role="alert"' in answer.text and "set-cookie" not in answer.headers


def test_a_job_token_cannot_sign_in(api: TestClient, platform: Platform) -> None:
    narrow = platform.token(platform.admin, scope="job:abc")
    answer = api.post("/signin", data={"token": narrow})
    assert answer.status_code == 403 and "scoped to one resource" in answer.text


def test_signing_out_ends_the_session_and_revoking_the_token_ends_its_sessions(
    api: TestClient, platform: Platform
) -> None:
    editor = platform.token_info(platform.admin, role="editor", name="ed")
    sign_in(api, editor["token"])
    answer = api.post("/signout", data={"csrf": csrf(api)}, follow_redirects=False)
    assert answer.status_code == 303
    cookie = api.cookies.get("lepton_session")
    assert cookie is None

    sign_in(api, editor["token"])
    kept = api.cookies["lepton_session"]
    revoked = api.delete(
        f"/api/v1/tokens/{editor['id']}", headers={"Authorization": f"Bearer {platform.admin}"}
    )
    assert revoked.status_code == 200, revoked.text
    api.cookies.set("lepton_session", kept)
    later = api.get("/", headers=HTML, follow_redirects=False)
    assert later.status_code == 303, "the session ended with the token it came from"


def test_a_write_without_the_csrf_token_is_refused(api: TestClient, platform: Platform) -> None:
    sign_in(api, platform.admin)
    answer = api.post("/train", data={"dataset": "x"}, headers=HTML)
    assert answer.status_code == 403 and "CSRF" in answer.text
    other = api.post("/train", data={"dataset": "x", "csrf": "0" * 64}, headers=HTML)
    assert other.status_code == 403


def test_a_viewer_sees_no_write_controls_and_is_refused_a_write(
    api: TestClient, platform: Platform
) -> None:
    viewer = platform.token(platform.admin, role="viewer")
    sign_in(api, viewer)
    for path in ("/", "/datasets", "/jobs"):
        page = api.get(path, headers=HTML)
        assert page.status_code == 200
        assert 'href="/train"' not in page.text and 'id="upload"' not in page.text, path
    answer = api.post("/train", data={"dataset": "x", "csrf": csrf(api)}, headers=HTML)
    assert answer.status_code == 403 and "may only read" in answer.text


def _push(platform: Platform, token: str, name: str, frame: pd.DataFrame) -> None:
    platform.client(token).datasets.push(frame, name=name)


def test_user_strings_render_as_text(api: TestClient, platform: Platform) -> None:
    evil = "<img src=x onerror=alert(1)>"
    frame = pd.DataFrame({evil: [1.0, 2.0, 3.0, 4.0] * 5, "label": ["a", "b"] * 10})
    _push(platform, platform.admin, "xss", frame)
    sign_in(api, platform.admin)

    page = api.get("/datasets/xss", headers=HTML)

    assert page.status_code == 200
    assert evil not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_a_dataset_page_draws_its_profile(api: TestClient, platform: Platform) -> None:
    frame = pd.DataFrame(
        {
            "age": [float(a) for a in range(40)],
            "colour": ["red", "blue"] * 20,
            "label": ["y", "n"] * 20,
        }
    )
    platform.client(platform.admin).datasets.push(frame, name="people", target="label")
    sign_in(api, platform.admin)

    page = api.get("/datasets/people", headers=HTML)

    assert page.status_code == 200
    assert page.text.count('<tr class="column">') == 3
    assert 'class="chart histogram"' in page.text, "a numeric column gets its histogram"
    assert 'class="chart bars"' in page.text, "class balance and top values are drawn"
    listing = api.get("/datasets", headers=HTML)
    assert 'href="/datasets/people"' in listing.text


def test_another_workspaces_resources_never_appear(api: TestClient, platform: Platform) -> None:
    other_admin = platform.workspace("other")
    _push(platform, other_admin, "secret-data", pd.DataFrame({"x": [1.0, 2.0] * 10}))
    sign_in(api, platform.admin)

    assert "secret-data" not in api.get("/datasets", headers=HTML).text
    page = api.get("/datasets/secret-data", headers=HTML)
    assert page.status_code == 404 and "secret-data" in page.text  # named as asked, not shown


def test_the_train_form_submits_a_job_and_its_page_follows_it(
    api: TestClient, platform: Platform
) -> None:
    frame = pd.DataFrame({"x": [float(i) for i in range(60)], "label": ["a", "b", "c"] * 20})
    platform.client(platform.admin).datasets.push(frame, name="toy", target="label")
    sign_in(api, platform.admin)
    form = api.get("/train?dataset=toy", headers=HTML)
    assert '<option value="toy" selected>' in form.text

    answer = api.post(
        "/train",
        data={"dataset": "toy", "algorithm": "auto", "time_budget_s": "30", "csrf": csrf(api)},
        headers=HTML,
        follow_redirects=False,
    )

    assert answer.status_code == 303
    job_id = answer.headers["location"].removeprefix("/jobs/")
    page = api.get(f"/jobs/{job_id}", headers=HTML)
    assert page.status_code == 200 and f"Job {job_id}" in page.text
    assert f'hx-get="/jobs/{job_id}/live"' in page.text, "a queued job's page refreshes itself"
    live = api.get(f"/jobs/{job_id}/live", headers=HTML)
    assert live.text.lstrip().startswith('<div id="live"')
    listing = api.get("/jobs?state=queued", headers=HTML)
    assert f'href="/jobs/{job_id}"' in listing.text
    events = platform.client(platform.admin).audit.list(action="console.train")
    assert events and events[0].resource == f"job/{job_id}"


def test_a_bad_train_form_says_what_is_wrong(api: TestClient, platform: Platform) -> None:
    sign_in(api, platform.admin)
    answer = api.post("/train", data={"dataset": "nothing", "csrf": csrf(api)}, headers=HTML)
    assert answer.status_code == 422 and 'role="alert"' in answer.text
    assert "nothing" in answer.text


@pytest.mark.parametrize(
    "path", ["/static/htmx.min.js", "/static/console.js", "/static/console.css"]
)
def test_the_static_files_are_served(api: TestClient, path: str) -> None:
    assert api.get(path).status_code == 200


def test_a_model_deploys_from_its_page_and_try_it_reports_a_replica_that_does_not_answer(
    api: TestClient, platform: Platform
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["a", "a", "b", "b"]})
    client = platform.client(platform.admin)
    client.models.register("tiny", LogisticRegression().fit(frame[["x"]], frame["label"]))
    sign_in(api, platform.admin)
    token = csrf(api)
    page = api.get("/models/tiny", headers=HTML)
    assert 'id="deploy"' in page.text

    deployed = api.post(
        "/models/tiny/deploy",
        data={"version": "1", "deployment": "tiny-web", "csrf": token},
        headers=HTML,
    )

    assert deployed.status_code == 201
    assert re.search(r'id="token">Inference token, shown only now: <code>lep_', deployed.text)
    assert 'name="col:x"' in deployed.text, "the try-it form is built from the signature"
    assert client.deployments.get("tiny-web").model == "tiny@1"
    # No supervisor runs in this app, so no replica answers: the page says so, no 5xx.
    tried = api.post(
        "/deployments/tiny-web/try", data={"col:x": "2.5", "csrf": token}, headers=HTML
    )
    assert tried.status_code == 200
    assert "does not answer" in tried.text and 'value="2.5"' in tried.text
    gone = api.post(
        "/deployments/tiny-web/delete", data={"csrf": token}, headers=HTML, follow_redirects=False
    )
    assert gone.status_code == 303


def test_replicas_accept_the_control_planes_own_bearer_for_their_deployment_only(
    control: Any,
) -> None:
    from lepton.serving.auth import TokenCheck, token_hash

    one, other = control.deployments.console_bearer("d1"), control.deployments.console_bearer("d2")
    assert one != other and one == control.deployments.console_bearer("d1")
    check = TokenCheck([token_hash(one)])
    assert check.allows(f"Bearer {one}".encode())
    assert not check.allows(f"Bearer {other}".encode())


def test_admins_create_and_revoke_tokens_and_nobody_else_sees_the_page(
    api: TestClient, platform: Platform
) -> None:
    editor = platform.token(platform.admin, role="editor")
    sign_in(api, editor)
    assert 'href="/tokens"' not in api.get("/", headers=HTML).text
    assert api.get("/tokens", headers=HTML).status_code == 403

    sign_in(api, platform.admin)
    made = api.post(
        "/tokens", data={"name": "ci-bot", "role": "viewer", "csrf": csrf(api)}, headers=HTML
    )
    assert made.status_code == 201
    secret = re.search(r'id="created">.*?<code>(lep_[^<]+)</code>', made.text)
    assert secret, made.text[:800]
    assert platform.client(secret.group(1)).datasets.list() == []  # the new token works
    token_id = secret.group(1).split("_")[1]
    gone = api.post(
        f"/tokens/{token_id}/revoke", data={"csrf": csrf(api)}, headers=HTML, follow_redirects=False
    )
    assert gone.status_code == 303
    assert "ci-bot" not in api.get("/tokens", headers=HTML).text
    events = api.get("/audit?action=console.token_revoke", headers=HTML).text
    assert f"token/{token_id}" in events and "console.train" not in events


def test_a_model_page_points_aliases_compares_versions_and_draws_its_lineage(
    api: TestClient, platform: Platform
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["a", "a", "b", "b"]})
    client = platform.client(platform.admin)
    for c in (1.0, 0.1):
        client.models.register(
            "tiny", LogisticRegression(C=c).fit(frame[["x"]], frame["label"]), metrics={"auc": c}
        )
    sign_in(api, platform.admin)

    pointed = api.post(
        "/models/tiny/alias",
        data={"version": "2", "alias": "production", "csrf": csrf(api)},
        headers=HTML,
    )
    assert (
        pointed.status_code == 200 and '<strong class="alias">production</strong>' in pointed.text
    )
    assert client.models.get("tiny@production").version == 2
    assert 'class="chart lineage"' in pointed.text and "tiny@2" in pointed.text
    compared = api.get("/models/tiny/compare?a=1&b=2", headers=HTML)
    assert compared.status_code == 200
    assert compared.text.count('<tr class="metric">') == 1 and "-0.9000" in compared.text


def queries_for(api: TestClient, control: Any, path: str) -> int:
    """How many SQL statements rendering ``path`` ran."""
    from sqlalchemy import event

    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(control.ctx.engine, "before_cursor_execute", count)
    try:
        assert api.get(path, headers=HTML).status_code == 200
    finally:
        event.remove(control.ctx.engine, "before_cursor_execute", count)
    return len(seen)


def test_a_jobs_page_costs_the_same_queries_however_many_datasets_its_jobs_read(
    api: TestClient, platform: Platform, control: Any
) -> None:
    client = platform.client(platform.admin)
    for i in range(6):
        frame = pd.DataFrame({"x": [float(j + i) for j in range(30)], "label": ["a", "b"] * 15})
        client.datasets.push(frame, name=f"d{i}", target="label")
    sign_in(api, platform.admin)

    client.jobs.train("d0", algorithm="logistic_regression")
    one_dataset = queries_for(api, control, "/jobs")
    for i in range(1, 6):
        client.jobs.train(f"d{i}", algorithm="logistic_regression")
    six_datasets = queries_for(api, control, "/jobs")
    assert six_datasets == one_dataset, "no query per row"


def test_model_and_dataset_lists_cost_the_same_queries_however_long_they_are(
    api: TestClient, platform: Platform, control: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    client = platform.client(platform.admin)
    frame = pd.DataFrame({"x": [float(j) for j in range(30)], "label": ["a", "b"] * 15})
    fitted = LogisticRegression().fit(frame[["x"]], frame["label"])
    sign_in(api, platform.admin)

    def grow(i: int) -> None:
        client.datasets.push(frame, name=f"d{i}", target="label")
        client.datasets.push(frame.iloc[: 20 + i], name=f"d{i}", target="label")
        for _ in range(2):
            client.models.register(f"m{i}", fitted, metrics={"auc": 0.5})
        client.models.alias(f"m{i}@2", "production")

    grow(0)
    short = [queries_for(api, control, p) for p in ("/models", "/datasets", "/models/m0")]
    for i in range(1, 5):
        grow(i)
        client.models.register("m0", fitted, metrics={"auc": 0.5})
    long = [queries_for(api, control, p) for p in ("/models", "/datasets", "/models/m0")]
    assert long == short, "no query per row"
    page = api.get("/models", headers=HTML).text
    assert page.count("production") >= 5 and "m4@2" in page


def test_a_dataset_is_transformed_and_split_from_its_page_and_its_lineage_drawn(
    api: TestClient, platform: Platform
) -> None:
    client = platform.client(platform.admin)
    frame = pd.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(40)],
            "x": [float(i % 7) for i in range(40)],
            "code": [str(i % 5) for i in range(40)],
            "label": ["a", "b"] * 20,
        }
    )
    frame.loc[3, "x"] = None
    client.datasets.push(pd.concat([frame, frame.iloc[:2]]), name="people", target="label")
    sign_in(api, platform.admin)
    page = api.get("/datasets/people", headers=HTML)
    assert 'id="transform"' in page.text and 'class="badge">personal data' in page.text

    made = api.post(
        "/datasets/people/transform",
        data={
            "csrf": csrf(api),
            "version": "1",
            "col:email": "hash",
            "col:code": "drop",
            "col:x": "keep",
            "cast:label": "category",
            "drop_nulls": "1",
            "deduplicate": "1",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"] == "/datasets/people?version=2"
    child = client.datasets.get("people@v2")
    assert [c.name for c in child.schema_] == ["email", "x", "label"]
    assert child.rows == 39, "one row without x and the two repeated rows are gone"
    assert [s.op for s in child.transform.steps] == ["drop", "anonymize", "cast", "drop_nulls",
                                                     "deduplicate"]  # fmt: skip
    pulled = client.datasets.to_pandas("people@v2")
    assert not pulled["email"].str.contains("@example.com").any()
    shown = api.get("/datasets/people?version=2", headers=HTML).text
    assert 'class="chart lineage"' in shown and "people@v1" in shown and "people@v2" in shown

    nothing = api.post(
        "/datasets/people/transform", data={"csrf": csrf(api), "version": "2"}, headers=HTML
    )
    assert nothing.status_code == 422 and "changes nothing" in nothing.text
    wrong = api.post(
        "/datasets/people/transform",
        data={"csrf": csrf(api), "version": "2", "col:nope": "drop"},
        headers=HTML,
    )
    assert wrong.status_code == 422 and 'id="form-error"' in wrong.text and "nope" in wrong.text

    split = api.post(
        "/datasets/people/split",
        data={"csrf": csrf(api), "version": "2", "strategy": "stratified", "train": "0.6",
              "validation": "0.2", "test": "0.2", "seed": "3", "target": "label"},
        headers=HTML,
    )  # fmt: skip
    assert split.status_code == 200 and split.text.count('<tr class="split">') == 1
    stored = client.datasets.splits("people@v2")
    assert len(stored) == 1 and sum(stored[0].counts.values()) == 39
    assert stored[0].spec.seed == 3 and stored[0].strategy == "stratified"
    bad = api.post(
        "/datasets/people/split",
        data={
            "csrf": csrf(api),
            "version": "2",
            "train": "0.9",
            "validation": "0.2",
            "test": "0.2",
        },
        headers=HTML,
    )
    assert bad.status_code == 422 and 'role="alert"' in bad.text


def test_a_viewer_sees_no_transform_or_split_form_and_cannot_post_one(
    api: TestClient, platform: Platform
) -> None:
    client = platform.client(platform.admin)
    client.datasets.push(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), name="small")
    viewer = platform.token(platform.admin, role="viewer", name="v")
    sign_in(api, viewer)
    page = api.get("/datasets/small", headers=HTML).text
    assert 'id="transform"' not in page and 'id="split"' not in page
    refused = api.post(
        "/datasets/small/transform",
        data={"csrf": csrf(api), "version": "1", "col:x": "drop"},
        headers=HTML,
    )
    assert refused.status_code == 403
    assert len(client.datasets.versions("small")) == 1


def test_a_model_page_draws_its_global_explanation_and_evaluations_with_slices(
    api: TestClient, platform: Platform, control: Any
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sqlalchemy import select

    from lepton.registry.evaluation import evaluate_predictions
    from lepton.store.models import ModelVersionRow

    client = platform.client(platform.admin)
    frame = pd.DataFrame(
        {"x": [float(j % 10) for j in range(60)], "noise": [0.0] * 60, "label": ["a", "b"] * 30}
    )
    features = frame[["x", "noise"]]
    fitted = LogisticRegression().fit(features, frame["label"])
    version = client.models.register("sliced", fitted, background=features, X_sample=features)
    explanation = client.models.explanation(version.ref)
    assert explanation["features"][0]["name"] == "x"
    predicted = fitted.predict(features)
    result = evaluate_predictions(
        "classification",
        frame["label"],
        predicted,
        slice_columns={"region": ["north", "south", "east"] * 20},
        target="label",
    )
    me = control.tokens.verify(platform.admin)
    with control.ctx.sessions() as session:
        row = session.scalars(select(ModelVersionRow)).one()
    control.models.record_evaluation(me, row, result, job=None, split="test")
    sign_in(api, platform.admin)

    page = api.get("/models/sliced", headers=HTML).text
    assert 'id="explanation"' in page and "x: " in page
    assert 'class="chart heatmap confusion"' in page
    assert "<h4>By region</h4>" in page
    table = page[page.index('<table class="slice">') :].split("</table>")[0]
    assert table.count("<tr>") == 4, "a header and north, south, east"
    north = next(p for p in result["slices"]["region"] if p["value"] == "north")
    assert f"{north['metrics']['accuracy']:.4f}" in table

    other = client.models.register("plain", fitted)
    bare = api.get(f"/models/{other.model}", headers=HTML).text
    assert 'id="explanation"' not in bare and "No evaluations yet" in bare
    missing = api.get(
        "/api/v1/models/plain/versions/1/explanation",
        headers={"Authorization": f"Bearer {platform.admin}"},
    )
    assert missing.status_code == 404 and "no global explanation" in missing.text


def test_a_deployment_rolls_to_another_version_and_back_from_its_page(
    api: TestClient, platform: Platform
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["a", "a", "b", "b"]})
    client = platform.client(platform.admin)
    for c in (1.0, 0.5):
        client.models.register("tiny", LogisticRegression(C=c).fit(frame[["x"]], frame["label"]))
    client.deployments.create("tiny@1", name="roll", wait=False)
    sign_in(api, platform.admin)
    page = api.get("/deployments/roll", headers=HTML).text
    assert 'id="update"' in page and '<option value="tiny@2" >tiny@2' in page
    assert page.count('<tr class="revision current">') == 1

    rolled = api.post(
        "/deployments/roll/update", data={"model": "tiny@2", "csrf": csrf(api)}, headers=HTML
    )
    assert rolled.status_code == 200 and client.deployments.get("roll").model == "tiny@2"
    assert rolled.text.count("Roll back to this") == 1, "generation 1 may be rolled back to"

    back = api.post(
        "/deployments/roll/rollback", data={"generation": "1", "csrf": csrf(api)}, headers=HTML
    )
    assert back.status_code == 200
    served = client.deployments.get("roll")
    assert served.model == "tiny@1" and served.generation == 3
    assert "rolled back to generation 1" in back.text

    again = api.post(
        "/deployments/roll/rollback", data={"generation": "3", "csrf": csrf(api)}, headers=HTML
    )
    assert again.status_code == 409 and 'class="error"' in again.text
    viewer = platform.token(platform.admin, role="viewer", name="v")
    sign_in(api, viewer)
    seen = api.get("/deployments/roll", headers=HTML).text
    assert 'id="update"' not in seen and "Roll back to this" not in seen and 'id="history"' in seen
    refused = api.post(
        "/deployments/roll/rollback", data={"generation": "1", "csrf": csrf(api)}, headers=HTML
    )
    assert refused.status_code == 403 and client.deployments.get("roll").generation == 3


def test_a_deployment_page_charts_the_traffic_its_replicas_reported(
    api: TestClient, platform: Platform, control: Any
) -> None:
    from datetime import UTC, datetime

    from sklearn.linear_model import LogisticRegression

    from lepton.serving.metrics import Metrics
    from lepton.serving.traffic import TrafficReporter

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["a", "a", "b", "b"]})
    client = platform.client(platform.admin)
    client.models.register("tiny", LogisticRegression().fit(frame[["x"]], frame["label"]))
    served = client.deployments.create("tiny@1", name="busy", wait=False)
    sign_in(api, platform.admin)
    quiet = api.get("/deployments/busy", headers=HTML).text
    assert "<strong>0</strong> requests" in quiet and "svg" not in quiet.split('id="traffic"')[1]

    # What a replica reports: its own counters, as the runtime keeps them.
    metrics = Metrics()
    for _ in range(40):
        metrics.observe("predict", 200, 0.004)
    metrics.observe("predict", 422, 0.001)
    metrics.observe("predict", 500, 0.002)
    line = TrafficReporter(metrics).line()
    assert line is not None
    assert control.ctx.traffic.take(served.id, "r1", line, datetime.now(UTC)) is None

    page = api.get("/deployments/busy/traffic", headers=HTML)
    assert page.status_code == 200 and 'hx-trigger="every 10s"' in page.text
    totals = page.text.split('id="traffic-totals">')[1].split("</p>")[0]
    assert "<strong>42</strong> requests" in totals
    assert "1 errors, 1 rejected" in totals and "1 replicas reporting" in totals
    assert page.text.count('<svg class="chart lines"') == 3
    assert "requests/s" in page.text and "p95 ms" in page.text


def test_a_deployment_page_shows_its_gateway_address_autoscaling_and_canary(
    api: TestClient, platform: Platform, control: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["a", "a", "b", "b"]})
    client = platform.client(platform.admin)
    for c in (1.0, 0.5):
        client.models.register("tiny", LogisticRegression(C=c).fit(frame[["x"]], frame["label"]))
    client.deployments.create("tiny@1", name="tide", min_replicas=0, max_replicas=2, wait=False)
    client.deployments.update("tide", model="tiny@2", canary=10)
    control.ctx.gateway_url = "http://127.0.0.1:8710"
    sign_in(api, platform.admin)
    page = api.get("/deployments/tide", headers=HTML).text
    assert "<code>http://127.0.0.1:8710/d/tide</code>" in page
    assert 'id="deployment-autoscaling">Autoscaling 0 to 2 replicas, 8 in flight each' in page
    assert "Canary: generation 2 serving tiny@2 for 10% of the gateway's requests" in page
    listed = api.get("/deployments", headers=HTML).text
    assert "http://127.0.0.1:8710/d/tide" in listed
