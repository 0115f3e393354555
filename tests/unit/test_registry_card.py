"""Evaluation metrics against scikit-learn, and model cards rendered from facts alone:
deterministic, and every line traceable to a recorded fact."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as m
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lepton.errors import InvalidRequest
from lepton.registry.card import LOW_RECALL, limitations, render_html, render_markdown
from lepton.registry.evaluation import evaluate_predictions, render_plots

# --- evaluation -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer() -> dict[str, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:400], y[:400])
    X_test, y_test = X[400:], y[400:]
    return {
        "X": X_test,
        "y": y_test,
        "pred": model.predict(X_test),
        "proba": model.predict_proba(X_test),
        "size": np.where(X_test[:, 0] > 14, "large", "small"),  # mean radius
    }


def test_classification_metrics_match_scikit_learn_overall_and_per_slice(
    cancer: dict[str, Any],
) -> None:
    y, pred, proba = cancer["y"], cancer["pred"], cancer["proba"]

    result = evaluate_predictions(
        "classification",
        y,
        pred,
        proba=proba,
        classes=[0, 1],
        slice_columns={"size": cancer["size"]},
    )

    metrics = result["metrics"]
    assert metrics["accuracy"] == pytest.approx(m.accuracy_score(y, pred))
    assert metrics["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert metrics["roc_auc"] == pytest.approx(m.roc_auc_score(y, proba[:, 1]))
    precision, recall, f1, support = m.precision_recall_fscore_support(y, pred, labels=[0, 1])
    assert result["per_class"]["1"]["recall"] == pytest.approx(recall[1])
    assert result["per_class"]["0"]["precision"] == pytest.approx(precision[0])
    assert result["per_class"]["0"]["support"] == support[0]
    assert result["per_class"]["1"]["f1"] == pytest.approx(f1[1])
    assert result["confusion_matrix"] == {
        "labels": [0, 1],
        "matrix": m.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }
    parts = {p["value"]: p for p in result["slices"]["size"]}
    assert sorted(parts) == ["large", "small"]
    for value, part in parts.items():
        rows = cancer["size"] == value
        assert part["rows"] == rows.sum()
        assert part["metrics"]["accuracy"] == pytest.approx(m.accuracy_score(y[rows], pred[rows]))


def test_regression_metrics_match_scikit_learn_and_numbers_slice_by_quartile() -> None:
    X, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(X[:300], y[:300]).predict(X[300:])
    y_test, age = y[300:], X[300:, 0]

    result = evaluate_predictions("regression", y_test, pred, slice_columns={"age": age})

    assert result["metrics"]["mae"] == pytest.approx(m.mean_absolute_error(y_test, pred))
    assert result["metrics"]["rmse"] == pytest.approx(np.sqrt(m.mean_squared_error(y_test, pred)))
    assert result["metrics"]["r2"] == pytest.approx(m.r2_score(y_test, pred))
    parts = result["slices"]["age"]
    assert len(parts) == 4 and sum(p["rows"] for p in parts) == len(y_test)
    assert sorted(render_plots(result, y_test, pred, None)) == ["residuals"]


def test_plots_are_pngs_and_the_same_evaluation_draws_the_same_bytes(
    cancer: dict[str, Any],
) -> None:
    result = evaluate_predictions(
        "classification", cancer["y"], cancer["pred"], proba=cancer["proba"]
    )

    first = render_plots(result, cancer["y"], cancer["pred"], cancer["proba"])
    again = render_plots(result, cancer["y"], cancer["pred"], cancer["proba"])

    assert sorted(first) == ["confusion_matrix", "roc"]
    assert all(png.startswith(b"\x89PNG") for png in first.values())
    assert first == again


def test_evaluating_nothing_is_an_error() -> None:
    with pytest.raises(InvalidRequest, match="cannot evaluate 0 predictions"):
        evaluate_predictions("classification", [], [])


# --- cards ----------------------------------------------------------------------------------


def facts() -> dict[str, Any]:
    return {
        "model": {
            "name": "heart",
            "version": 3,
            "ref": "heart@3",
            "flavour": "sklearn",
            "algorithm": "random_forest",
            "task": "classification",
            "registered_at": "2026-11-25T10:00:00+00:00",
            "aliases": ["production"],
            "job": "abc123def456",
        },
        "intended_use": "Triage support for cardiologists; never a diagnosis.",
        "signature": {
            "inputs": [{"name": "age"}, {"name": "sex"}],
            "outputs": {"classes": ["no", "yes"]},
        },
        "params": {"n_estimators": 200, "seed": 0},
        "leaderboard": [{"algorithm": "random_forest", "val_score": 0.91}],
        "environment": {"python": "3.11.7", "scikit-learn": "1.6.1"},
        "dataset": {
            "ref": "heart@v1",
            "rows": 303,
            "source": "heart.csv",
            "target": "label",
            "class_balance": {"no": 165, "yes": 138},
            "pii": {
                "rows_scanned": 303,
                "findings": [
                    {
                        "column": "email",
                        "kind": "email",
                        "count": 12,
                        "fraction": 0.04,
                        "reason": "pattern",
                    }
                ],
            },
            "transforms": [{"op": "anonymize", "columns": ["name"], "method": "hash"}],
        },
        "evaluations": [
            {
                "dataset": "heart@v1",
                "split": "test",
                "rows": 61,
                "target": "label",
                "metrics": {"accuracy": 0.85, "roc_auc": 0.9},
                "per_class": {
                    "no": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 33},
                    "yes": {"precision": 0.8, "recall": 0.6, "f1": 0.69, "support": 28},
                },
                "confusion_matrix": {"labels": ["no", "yes"], "matrix": [[31, 2], [11, 17]]},
                "slices": {
                    "sex": [
                        {"value": "F", "rows": 20, "metrics": {"accuracy": 0.7}},
                        {"value": "M", "rows": 41, "metrics": {"accuracy": 0.9}},
                    ]
                },
                "plots": {"roc": "ab" * 32},
            }
        ],
        "explanations": {
            "kind": "tabular",
            "method": "tree_shap",
            "output_space": "probability",
            "rows": 61,
            "sample": "test",
            "background_rows": 100,
            "features": [{"name": "sex", "mean_abs": 0.21}, {"name": "age", "mean_abs": 0.034}],
            "plot": "cd" * 32,
        },
    }


def test_the_same_facts_give_byte_identical_cards() -> None:
    shuffled = copy.deepcopy(facts())
    shuffled["params"] = dict(reversed(list(shuffled["params"].items())))

    assert render_markdown(facts()) == render_markdown(shuffled)
    images = {"ab" * 32: b"png", "cd" * 32: b"explanation png"}
    assert render_html(facts(), images) == render_html(shuffled, images)
    assert render_html(facts(), images).count("data:image/png;base64,") == 2


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("intended_use",), "Triage support for cardiologists"),
        (("model", "aliases"), "**Aliases:** production"),
        (("model", "job"), "abc123def456"),
        (("params",), "| n_estimators | 200 |"),
        (("leaderboard",), "### AutoML leaderboard"),
        (("environment",), "| scikit-learn | 1.6.1 |"),
        (("dataset",), "`heart@v1`"),
        (("dataset", "source"), "**Source file:** heart.csv"),
        (("dataset", "class_balance"), "| yes | 138 |"),
        (("dataset", "transforms"), "`anonymize`"),
        (("evaluations",), "| accuracy | 0.8500 |"),
        (("evaluations", 0, "slices"), "By `sex`:"),
        (("evaluations", 0, "plots"), "![roc](plots/"),
        (("evaluations", 0, "confusion_matrix"), "Confusion matrix"),
        (("explanations",), "## Explanations"),
        (("explanations", "features"), "| sex | 0.21 |"),
        (("explanations", "background_rows"), "against 100 background rows"),
        (("explanations", "plot"), "![global explanation](plots/"),
    ],
)
def test_removing_a_fact_removes_its_line(path: tuple[Any, ...], line: str) -> None:
    full = render_markdown(facts())
    pruned = facts()
    holder: Any = pruned
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]

    assert line in full
    assert line not in render_markdown(pruned)


def test_a_fact_never_recorded_is_said_so_not_guessed() -> None:
    bare = {"model": facts()["model"], "signature": {}}

    card = render_markdown(bare)

    assert "## Intended use\n\nNot recorded." in card
    assert "Training data not recorded" in card
    assert "No evaluation recorded." in card
    assert "datasets:" not in card and "model-index" not in card
    assert "how well the model does is unknown" in card


def test_front_matter_follows_the_hugging_face_layout() -> None:
    import yaml  # type: ignore[import-untyped]

    front = yaml.safe_load(render_markdown(facts()).split("---\n")[1])

    assert front["library_name"] == "sklearn"
    assert front["datasets"] == ["heart@v1"]
    assert "classification" in front["tags"]
    [result] = front["model-index"][0]["results"]
    assert result["dataset"] == {
        "name": "heart",
        "type": "heart",
        "revision": "v1",
        "split": "test",
    }
    assert {"type": "accuracy", "name": "accuracy", "value": 0.85} in result["metrics"]


def test_limitations_come_from_the_numbers() -> None:
    found = limitations(facts())

    assert any(f"Class yes has low recall (0.60 < {LOW_RECALL})" in line for line in found)
    assert not any("Class no" in line for line in found)
    assert any(
        "`sex` is F (20 rows) accuracy is 0.700 against 0.850 overall" in line for line in found
    )
    assert any("only 61 rows" in line for line in found)
    assert any("personal data (email)" in line for line in found)


def test_explanations_state_method_and_space_and_rank_features_as_recorded() -> None:
    card = render_markdown(facts())

    assert (
        "Mean absolute attribution by exact tree SHAP over 61 rows of the held-out test split, "
        "in probability space, against 100 background rows." in card
    )
    assert card.index("| sex | 0.21 |") < card.index("| age | 0.034 |")
    assert card.index("## Explanations") < card.index("## Limitations")


def test_an_explanation_not_computed_says_why() -> None:
    missing = facts() | {"explanations": {"not_computed": "forecasting models have no ..."}}

    card = render_markdown(missing)

    assert "## Explanations\n\nNot computed: forecasting models have no ..." in card
    assert "![global explanation]" not in card


def test_an_image_explanation_lists_its_classes_and_keeps_the_plot() -> None:
    image = facts() | {
        "explanations": {
            "kind": "image",
            "method": "integrated_gradients",
            "output_space": "probability",
            "rows": 12,
            "sample": "test",
            "classes": [{"class": 3, "count": 7, "saliency": [[0.0]]}, {"class": 8, "count": 5}],
            "plot": "cd" * 32,
        }
    }

    card = render_markdown(image)

    assert (
        "Mean absolute saliency per predicted class by integrated gradients over 12 images" in card
    )
    assert "| 3 | 7 |" in card and "| 8 | 5 |" in card
    assert f"![global explanation](plots/{'cd' * 32}.png)" in card
    assert "0.0" not in card.split("## Explanations")[1].split("## Limitations")[0]


def test_a_pipe_in_a_value_cannot_break_a_table() -> None:
    tricky = facts()
    tricky["params"] = {"kernel": "a|b\nc"}

    assert "| kernel | a b c |" in render_markdown(tricky)
