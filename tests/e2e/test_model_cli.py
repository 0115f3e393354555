"""The registry through the CLI as a user runs it: a trained model's evaluation in
``lepton model show``, aliases, ``lepton evaluate --slice``, ``lepton model compare``,
``lepton model card`` (Markdown and HTML), ``lepton lineage``, and ``lepton model rm`` refusing
while an alias points at the version.

One server for the module; the two train jobs run to their end inside module fixtures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

if TYPE_CHECKING:
    from conftest import Cli, Result

JOB_TIMEOUT_S = 180  # a runner imports scikit-learn on a loaded 2-core machine


def ok(result: Result) -> Result:
    assert result.code == 0, (result.out, result.err)
    assert "Traceback" not in result.err + result.out, result.err
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    sex = rng.choice(["F", "M"], size=rows)
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "sex": sex, "label": np.where(x1 + x2 > 0, "yes", "no")}
    )


@pytest.fixture(scope="module")
def heart(lepton: Cli, tmp_path_factory: pytest.TempPathFactory) -> Result:
    folder = tmp_path_factory.mktemp("data")
    _frame(300, 0).to_csv(folder / "heart.csv", index=False)
    _frame(150, 1).to_csv(folder / "heart-2025.csv", index=False)
    ok(lepton("dataset", "push", str(folder / "heart.csv"), "--target", "label"))
    return ok(lepton("dataset", "push", str(folder / "heart-2025.csv"), "--target", "label"))


@pytest.fixture(scope="module")
def two_versions(lepton: Cli, heart: Result) -> None:
    for algorithm in ("logistic_regression", "random_forest"):
        ok(lepton("train", "heart", "--algorithm", algorithm, timeout=JOB_TIMEOUT_S))


def test_show_lists_the_held_out_evaluation(lepton: Cli, two_versions: None) -> None:
    shown = flat(ok(lepton("model", "show", "heart@1")).out)

    assert "evaluation on held-out test split of heart@v1" in shown
    assert "accuracy" in shown and "roc_auc" in shown


def test_an_alias_then_an_evaluation_by_slice(lepton: Cli, two_versions: None) -> None:
    assert (
        "heart@production now points at heart@1"
        in ok(lepton("model", "alias", "heart@1", "production")).out
    )

    result = ok(
        lepton(
            "evaluate",
            "heart@production",
            "--dataset",
            "heart-2025@v1",
            "--slice",
            "sex",
            timeout=JOB_TIMEOUT_S,
        )
    )

    out = flat(result.out)
    assert "evaluates heart@1" in out and "by sex" in out
    assert "│ F" in result.out and "│ M" in result.out
    assert "evaluation on heart-2025@v1" in flat(ok(lepton("model", "show", "heart@1")).out)


def test_compare_shows_both_versions_side_by_side(lepton: Cli, two_versions: None) -> None:
    out = ok(lepton("model", "compare", "heart@1", "heart@2", columns=120)).out

    assert "heart@1" in out and "heart@2" in out
    assert "logistic_regression" in out and "random_forest" in out
    assert "accuracy" in out


def test_the_card_is_written_as_markdown_and_html(
    lepton: Cli, two_versions: None, tmp_path: Path
) -> None:
    ok(lepton("model", "describe", "heart@2", "Screening aid; a clinician decides."))
    md, page = tmp_path / "card.md", tmp_path / "card.html"

    ok(lepton("model", "card", "heart@2", "-o", str(md), "--html", str(page)))

    text = md.read_text()
    assert text.startswith("---\n") and "library_name: sklearn" in text
    assert "Screening aid; a clinician decides." in text
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert ok(lepton("model", "card", "heart@2")).out == text


def test_lineage_prints_the_tree_from_the_data(lepton: Cli, two_versions: None) -> None:
    out = flat(ok(lepton("lineage", "heart@1", columns=120)).out)

    assert "model version heart@1" in out
    assert "made from" in out and "dataset version heart@v1" in out and "job" in out
    data = flat(ok(lepton("lineage", "heart@v1", "--dataset", columns=120)).out)
    assert "heart@1" in data and "heart@2" in data


def test_rm_refuses_while_an_alias_points_at_the_version(lepton: Cli, two_versions: None) -> None:
    ok(lepton("model", "alias", "heart@2", "staging"))

    refused = lepton("model", "rm", "heart@2")
    assert refused.code != 0 and "Traceback" not in refused.err
    assert "in use by alias staging" in flat(refused.err + refused.out)
    assert "--force" in refused.err + refused.out

    ok(lepton("model", "rm", "heart@2", "--force"))
    gone = lepton("model", "card", "heart@2")
    assert gone.code != 0 and "was deleted" in flat(gone.err + gone.out)
    assert "heart@2" not in ok(lepton("model", "list")).out
