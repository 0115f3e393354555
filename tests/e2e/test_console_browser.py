"""The console in a real browser (Playwright driving Debian's chromium) against ``lepton up``:
sign in, upload a CSV and see its profile, start AutoML from the form and watch it live, roles,
escaping and workspace isolation. Each test saves a screenshot (``LEPTON_CONSOLE_SHOTS`` names
a folder to keep them in; docs/console.md shows the key ones)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from lepton import Client

if TYPE_CHECKING:
    from conftest import ServerProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip("needs Debian's chromium (apt-get install chromium) for the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: chromium's own sandbox needs user namespaces that root in a container
        # does not get; the page under test is our own console on loopback.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    opened.dialogs = dialogs
    try:
        yield opened
    finally:
        shot = tmp_path / f"{request.node.name}.png"
        opened.screenshot(path=str(shot), full_page=True)
        keep = os.environ.get("LEPTON_CONSOLE_SHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
        context.close()


def snap(page: Any, name: str) -> None:
    """A screenshot mid-test, kept where ``LEPTON_CONSOLE_SHOTS`` says."""
    keep = os.environ.get("LEPTON_CONSOLE_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(keep) / f"{name}.png"), full_page=True)


def sign_in(page: Any, server: ServerProcess, token: str) -> None:
    page.goto(server.url + "/")
    assert page.url.endswith("/signin")
    page.fill('input[name="token"]', token)
    page.click('button[type="submit"]')
    page.wait_for_url(server.url + "/")


def test_sign_in_shows_the_workspace_and_sign_out_ends_it(page: Any, server: ServerProcess) -> None:
    sign_in(page, server, server.token)
    assert page.inner_text("#workspace") == "default"
    page.click("text=Sign out")
    page.wait_for_url(server.url + "/signin")
    page.goto(server.url + "/datasets")
    assert page.url.endswith("/signin")


def test_upload_a_csv_and_see_its_profile_drawn(
    page: Any, server: ServerProcess, tmp_path: Path
) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :6].copy()
    frame["diagnosis"] = data.target.map(dict(enumerate(data.target_names)))
    csv = tmp_path / "tumours.csv"
    frame.to_csv(csv, index=False)
    sign_in(page, server, server.token)

    page.goto(server.url + "/datasets")
    page.set_input_files('input[name="file"]', str(csv))
    page.fill('input[name="name"]', "tumours")
    page.fill('input[name="target"]', "diagnosis")
    page.click('#upload button[type="submit"]')
    page.wait_for_url("**/datasets/tumours?version=1")

    assert page.locator("h1").inner_text() == "tumours@v1"
    assert page.locator("tr.column").count() == 7
    assert page.locator("svg.histogram").count() == 6, "one histogram per numeric column"
    assert page.locator("svg.bars").count() >= 1, "the class balance is drawn"
    snap(page, "dataset-profile")

    # A new version without one column, from the transform form; its lineage shows the parent.
    dropped = frame.columns[0]
    page.select_option(f'select[name="col:{dropped}"]', "drop")
    page.check('input[name="deduplicate"]')
    page.click('#transform button[type="submit"]')
    page.wait_for_url("**/datasets/tumours?version=2")
    assert page.locator("tr.column").count() == 6
    assert page.locator("svg.lineage rect.node").count() == 2, "v1 and the v2 made from it"
    snap(page, "dataset-transformed")


def test_start_automl_from_the_form_and_watch_it_live(page: Any, server: ServerProcess) -> None:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame["species"] = frame["species"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    with Client(server.url, server.token) as client:
        client.datasets.push(frame, name="iris", target="species")
    sign_in(page, server, server.token)

    page.goto(server.url + "/train?dataset=iris")
    page.select_option('select[name="algorithm"]', "auto")
    page.fill('input[name="time_budget_s"]', "20")
    page.click('button:has-text("Start training")')
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]

    # The live part refreshes itself every 2 s: its log grows and its metrics are drawn.
    page.wait_for_function(
        "() => document.querySelector('#log').textContent.includes('attempt 1')", timeout=60_000
    )
    page.wait_for_selector("#metrics svg.lines polyline", timeout=120_000)
    snap(page, "job-live")
    page.wait_for_function(
        "() => document.querySelector('#job-state').textContent === 'succeeded'",
        timeout=240_000,
    )
    assert page.locator("#job-model").inner_text().startswith("iris@")
    page.click("#job-model")
    page.wait_for_url("**/models/iris?version=*")
    assert "## Evaluation" in page.locator("pre.card").inner_text()
    assert page.locator("svg.lineage rect.node").count() == 3, "dataset, job and model"
    snap(page, "model-page")
    with Client(server.url, server.token) as client:
        assert client.jobs.get(job_id).state == "succeeded"

    # Deploy it from its page, then ask the try-it form for an answer and its attributions.
    page.fill('#deploy input[name="deployment"]', "iris-console")
    page.click('#deploy button[type="submit"]')
    try:
        assert page.locator("#token code").inner_text().startswith("lep_"), "shown once"
        page.wait_for_function(
            "() => document.querySelector('#deployment-state').textContent === 'ready'",
            timeout=120_000,
        )
        row = frame.drop(columns="species").iloc[120]
        for column, value in row.items():
            page.fill(f'input[name="col:{column}"]', str(value))
        page.click('#try button[type="submit"]')
        page.wait_for_selector("#attributions svg.bars")
        assert page.locator("#prediction").inner_text() in ("setosa", "versicolor", "virginica")
        assert page.locator("#attributions svg.bars rect").count() == 4, "one bar per feature"
        snap(page, "try-it")
        # The answer and its explanation were two requests: the replica reports them and the
        # page's traffic part, redrawing itself every 10 s, charts them.
        page.goto(server.url + "/deployments/iris-console")
        page.wait_for_selector("#traffic svg.lines", timeout=60_000)
        assert "<strong>2</strong> requests" in page.inner_html("#traffic-totals")
        snap(page, "deployment")
    finally:
        with Client(server.url, server.token) as client:
            client.deployments.delete("iris-console")


def test_a_viewer_sees_no_write_controls(page: Any, server: ServerProcess) -> None:
    with Client(server.url, server.token) as client:
        viewer = client.tokens.create("browser-viewer", role="viewer").token
    sign_in(page, server, viewer)
    for path in ("/", "/datasets", "/jobs"):
        page.goto(server.url + path)
        assert page.locator('a[href="/train"]').count() == 0, path
        assert page.locator("#upload").count() == 0, path
    page.goto(server.url + "/train")
    assert page.locator('button:has-text("Start training")').count() == 1  # the form reads...
    page.click('button:has-text("Start training")')
    assert "may only read" in page.locator(".error").inner_text()  # ...but writing is refused


def test_a_hostile_column_name_renders_as_text(page: Any, server: ServerProcess) -> None:
    evil = "<img src=x onerror=alert(1)>"
    with Client(server.url, server.token) as client:
        client.datasets.push(
            pd.DataFrame({evil: [1.0, 2.0, 3.0] * 7, "y": ["a", "b", "c"] * 7}), name="hostile"
        )
    sign_in(page, server, server.token)

    page.goto(server.url + "/datasets/hostile")

    assert page.locator("td.name").first.inner_text() == evil
    assert page.locator("img").count() == 0
    assert page.dialogs == [], "no script ran"


def test_another_workspaces_resources_never_appear(page: Any, server: ServerProcess) -> None:
    with Client(server.url, server.token) as client:
        client.datasets.push(pd.DataFrame({"x": [1.0, 2.0] * 10}), name="default-only")
        other = client.workspaces.create("elsewhere").admin_token.token
    sign_in(page, server, other)

    assert page.inner_text("#workspace") == "elsewhere"
    page.goto(server.url + "/datasets")
    assert "default-only" not in page.content()
    page.goto(server.url + "/datasets/default-only")
    assert "does not exist in workspace 'elsewhere'" in page.locator(".error").inner_text()


def test_an_image_model_answers_an_uploaded_image_in_the_try_it_form(
    page: Any, server: ServerProcess, tmp_path: Path
) -> None:
    import torch
    from PIL import Image

    class Brightness(torch.nn.Module):
        """Light or dark: the mean pixel against mid-grey, on [0, 1] pixels."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=(1, 2, 3))
            return torch.softmax(torch.stack([0.5 - mean, mean - 0.5], dim=1) * 20, dim=1)

    signature = {
        "inputs": {"shape": [8, 8, 1], "dtype": "float32", "pixel_range": [0, 1]},
        "outputs": {"classes": ["dark", "light"]},
    }
    with Client(server.url, server.token) as client:
        client.models.register("brightness", Brightness(), signature=signature)
    # Grey 100 of 255 is dark on [0, 1] pixels (0.39); read as raw 0-255 it would be light.
    grey = tmp_path / "grey.png"
    Image.new("L", (32, 32), 100).save(grey)
    sign_in(page, server, server.token)

    page.goto(server.url + "/models/brightness")
    page.fill('#deploy input[name="deployment"]', "brightness")
    page.click('#deploy button[type="submit"]')
    try:
        page.wait_for_function(
            "() => document.querySelector('#deployment-state').textContent === 'ready'",
            timeout=120_000,
        )
        page.set_input_files('#try input[name="image"]', str(grey))
        page.click('#try button[type="submit"]')
        page.wait_for_selector("#attributions figure")
        assert page.locator("#prediction").inner_text() == "dark"
        assert page.locator('#attributions img[alt="the image sent"]').count() == 1
        snap(page, "try-it-image")
    finally:
        with Client(server.url, server.token) as client:
            client.deployments.delete("brightness")
