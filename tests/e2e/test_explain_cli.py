"""``lepton explain`` as a user runs it: a ranked table from a deployment (with its token) or
from the model loaded in-process, the two agreeing; ``--class``; ``--html`` reports for tables
and images; and clear errors for bad input.

One server for the module. The data are built so the answer is known: only ``signal`` decides
the label of the table, and only the left half of the picture decides the image's class.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from lepton import Client

if TYPE_CHECKING:
    from conftest import Cli, Result, ServerProcess

JOB_TIMEOUT_S = 240  # a runner imports scikit-learn or torch on a loaded 2-core machine
ROW = {"signal": 2.5, "noise_a": 0.1, "noise_b": -0.3, "colour": "red"}


def ok(result: Result) -> Result:
    assert result.code == 0, (result.out, result.err)
    assert "Traceback" not in result.err + result.out, result.err
    return result


def explained(result: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(result).out)
    return data


@pytest.fixture(scope="module")
def model(lepton: Cli, tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "noise_a": rng.normal(size=n),
            "noise_b": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], size=n),
        }
    )
    frame["label"] = np.where(frame["signal"] > 0, "yes", "no")
    path = tmp_path_factory.mktemp("data") / "signal.csv"
    frame.to_csv(path, index=False)
    ok(lepton("dataset", "push", str(path), "--target", "label"))
    ok(lepton("train", "signal", "--algorithm", "random_forest", timeout=JOB_TIMEOUT_S))
    return "signal@1"


@pytest.fixture(scope="module")
def deployment(server: ServerProcess, model: str) -> Iterator[str]:
    """The deployment of ``signal@1``; yields its inference token and removes it at the end."""
    client = Client(server.url, server.token)
    created = client.deployments.create(model, wait_timeout_s=120)
    assert created.token is not None
    try:
        yield created.token
    finally:
        client.deployments.delete(created.name)
        client.close()


def table_features(out: str) -> list[str]:
    """Feature names of the ranked table, top first."""
    return re.findall(r"^\s*\d+\s+(\w+)\s", out, flags=re.MULTILINE)


def gap(out: str) -> float:
    """The ``off by X`` of the additivity line."""
    match = re.search(r"off by ([0-9.e+-]+)\)", out)
    assert match is not None, out
    return float(match.group(1))


def test_a_deployment_explains_with_its_token(lepton: Cli, deployment: str) -> None:
    out = ok(lepton("explain", "signal", "--row", json.dumps(ROW), "--token", deployment)).out

    assert "computed by deployment signal" in out
    assert table_features(out)[0] == "signal"  # the only feature that decides the label
    assert "predicted yes" in out
    assert gap(out) < 1e-6  # exact tree SHAP: base + sum = output


@pytest.fixture(scope="module")
def local(lepton: Cli, model: str) -> dict[str, Any]:
    """The row explained in this process (``--local``), as JSON."""
    return explained(lepton("explain", model, "--row", json.dumps(ROW), "--local", "--json"))


def test_in_process_gives_the_deployments_numbers(
    lepton: Cli, deployment: str, local: dict[str, Any]
) -> None:
    row = json.dumps(ROW)
    remote = explained(lepton("explain", "signal", "--row", row, "--token", deployment, "--json"))

    assert remote["source"].startswith("deployment signal")
    assert local["source"] == "this process"
    assert local["rows"][0]["names"] == remote["rows"][0]["names"]
    np.testing.assert_allclose(
        local["rows"][0]["attributions"], remote["rows"][0]["attributions"], atol=1e-12
    )
    assert local["rows"][0]["base_value"] == pytest.approx(remote["rows"][0]["base_value"])


def test_without_the_token_it_says_so_and_explains_in_process(lepton: Cli, deployment: str) -> None:
    result = ok(lepton("explain", "signal", "--row", json.dumps(ROW)))

    assert "needs its token (--token)" in " ".join(result.err.split())
    assert "computed in this process" in result.out
    assert table_features(result.out)[0] == "signal"


def test_another_class_mirrors_the_predicted_one(
    lepton: Cli, model: str, deployment: str, local: dict[str, Any]
) -> None:
    yes = local["rows"][0]
    row = json.dumps(ROW)
    no = explained(lepton("explain", model, "--row", row, "--class", "no", "--json"))["rows"][0]
    asked = explained(
        lepton("explain", "signal", "--row", row, "--class", "no", "--token", deployment, "--json")
    )

    assert asked["source"].startswith("deployment")
    assert (yes["target"], no["target"], asked["rows"][0]["target"]) == ("yes", "no", "no")
    # Two classes of a forest: p(no) = 1 - p(yes), so every attribution flips its sign.
    np.testing.assert_allclose(no["attributions"], -np.asarray(yes["attributions"]), atol=1e-9)
    np.testing.assert_allclose(asked["rows"][0]["attributions"], no["attributions"], atol=1e-9)


def test_rows_from_a_csv_file_and_the_top_limit(
    lepton: Cli, deployment: str, tmp_path: Path
) -> None:
    rows = pd.DataFrame([ROW, {**ROW, "signal": -2.0}])
    rows.to_csv(tmp_path / "rows.csv", index=False)

    path = str(tmp_path / "rows.csv")
    out = ok(
        lepton("explain", "signal", "--rows-file", path, "--top", "2", "--token", deployment)
    ).out

    assert "row 1: predicted yes" in out and "row 2: predicted no" in out
    assert out.count("2 more") == 2  # 4 features, 2 shown, the other 2 summed on one line
    assert gap(out) < 1e-6


def test_html_report_is_one_self_contained_page(
    lepton: Cli, deployment: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"

    row = json.dumps(ROW)
    ok(lepton("explain", "signal", "--row", row, "--token", deployment, "--html", str(report)))

    page = report.read_text()
    assert page.startswith("<!doctype html>")
    assert "<svg" in page and ">signal</text>" in page
    assert "off by" in page  # the additivity check
    assert "src=" not in page and "<script" not in page and "<link" not in page


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "nothing to explain"),
        (("--row", "{'signal': 1}"), 2, "is not JSON"),
        (("--row", "[1, 2"), 2, "is not JSON"),
        (("--row", '"text"'), 2, "each input is a JSON object"),
        (("--row", '{"signal": 1}'), 2, "lacks column"),
        (("--rows-file", "rows.xlsx"), 2, "is not a file"),
        (("--row", json.dumps(ROW), "--class", "maybe"), 2, "not a class of this model"),
    ],
)
def test_bad_input_is_a_clear_error(
    lepton: Cli, deployment: str, args: tuple[str, ...], code: int, message: str
) -> None:
    result = lepton("explain", "signal", "--token", deployment, *args)

    assert result.code == code, (result.out, result.err)
    assert message in " ".join(result.err.split())
    assert "fix:" in result.err and "Traceback" not in result.err


def test_an_unknown_model_is_not_found(lepton: Cli, model: str) -> None:
    result = lepton("explain", "nothing-here", "--row", json.dumps(ROW))

    assert result.code == 4
    assert "lepton model list" in result.err


def test_an_image_model_gets_a_saliency_overlay(
    lepton: Cli, tmp_path: Path, server: ServerProcess
) -> None:
    # 16 x 16 pictures: a bright bar on the left half is class "left", on the right "right".
    rng = np.random.default_rng(0)
    n = 240
    images = (rng.random((n, 16, 16)) * 40).astype(np.uint8)
    side = rng.integers(0, 2, size=n)
    for i, s in enumerate(side):
        col = rng.integers(2, 6) + (8 if s else 0)
        images[i, 3:13, col : col + 2] = 255
    np.savez(tmp_path / "bars.npz", image=images, label=np.where(side, "right", "left"))
    ok(lepton("dataset", "push", str(tmp_path / "bars.npz"), "--target", "label"))
    ok(
        lepton(
            "train", "bars", "--algorithm", "cnn", "--param", "epochs=3", "--param",
            "channels=8", "--param", "augment=false", timeout=JOB_TIMEOUT_S,
        )
    )  # fmt: skip
    picture = np.full((16, 16), 10, dtype=np.uint8)
    picture[3:13, 3:5] = 255
    from PIL import Image

    Image.fromarray(picture).save(tmp_path / "left.png")
    report = tmp_path / "bars.html"

    data = explained(
        lepton("explain", "bars@1", "--rows-file", str(tmp_path / "left.png"), "--json",
               "--html", str(report))
    )  # fmt: skip

    assert data["kind"] == "image" and data["rows"][0]["prediction"] == "left"
    saliency = np.abs(np.asarray(data["rows"][0]["attributions"]))
    assert saliency.shape == (16, 16)
    # The bar is on the left: most of the attribution lies there (half the pixels).
    assert saliency[:, :8].sum() > 0.5 * saliency.sum()
    page = report.read_text()
    assert "predicted left" in page and "saliency 16x16" in page
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert png is not None
    assert base64.b64decode(png.group(1)).startswith(b"\x89PNG\r\n\x1a\n")


def test_a_text_model_ranks_words(lepton: Cli, tmp_path: Path) -> None:
    # Only the one sentiment word in each review decides its label.
    rng = np.random.default_rng(0)
    filler = ["the", "plot", "was", "actors", "really", "quite", "movie"]
    good, bad = ["great", "lovely", "wonderful"], ["boring", "awful", "dull"]
    reviews = []
    for i in range(200):
        words = [*rng.choice(filler, size=4), rng.choice(good if i % 2 else bad)]
        reviews.append({"review": " ".join(rng.permutation(words)), "label": i % 2})
    pd.DataFrame(reviews).assign(label=lambda f: np.where(f.label, "pos", "neg")).to_csv(
        tmp_path / "reviews.csv", index=False
    )
    ok(lepton("dataset", "push", str(tmp_path / "reviews.csv"), "--target", "label"))
    ok(lepton("train", "reviews", "--algorithm", "tfidf_linear", timeout=JOB_TIMEOUT_S))
    report = tmp_path / "reviews.html"

    row = json.dumps({"review": "the plot was really boring"})
    out = ok(lepton("explain", "reviews@1", "--row", row, "--html", str(report))).out

    assert "predicted neg" in out
    assert table_features(out)[0] == "boring"
    assert gap(out) < 1e-6  # exact shares of the log-odds
    assert "<th>word</th>" in report.read_text()
