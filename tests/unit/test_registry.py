"""The registry over the API: aliases, deletion, descriptions, comparison, evaluation jobs,
model cards and lineage, with a model trained by the real runner in-process.

One app serves the whole module (building one costs about a second): each test uses model
names of its own.
"""

from __future__ import annotations

import base64
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from test_jobs import FakeExecutor, run_runner, toy_frame
from test_registry_flavours import client, platform, served, state, workspace_client

from lepton import Client
from lepton.control.plane import Control
from lepton.control.scheduler import Scheduler
from lepton.errors import Conflict, InvalidRequest, NotFound
from lepton.explain import stored_background
from lepton.jobs import tracking
from lepton.registry.artifacts import unpack
from lepton.schemas import Job, JobState

if TYPE_CHECKING:
    from conftest import Platform

__all__ = ["client", "platform", "served", "state", "workspace_client"]  # shared fixtures


def _fit(seed: int, c: float = 1.0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    return LogisticRegression(C=c).fit(X, (X.a > 0).astype(int))


@pytest.fixture
def three(client: Client) -> Client:
    """Model ``m`` with versions 1, 2 and 3 brought in from scikit-learn, in a fresh workspace."""
    for seed in range(3):
        client.models.register("m", _fit(seed, c=1.0 + seed), params={"C": 1.0 + seed})
    return client


# --- aliases ---------------------------------------------------------------------------------


def test_an_alias_resolves_everywhere_a_reference_does_and_moves_in_one_step(three: Client) -> None:
    assert three.models.alias("m@1", "production").version == 1
    assert three.models.get("m@production").version == 1

    moved = three.models.alias("m@2", "production")

    assert moved.version == 2 and moved.aliases == ["production"]
    assert three.models.get("m@production").version == 2
    assert three.models.get("m@1").aliases == []
    assert three.models.list()[0].aliases == {"production": 2}
    assert three.models.load("m@production").predict([[1.0, 0.0]]).tolist() == [1]


def test_an_alias_on_a_missing_version_is_refused_and_leaves_no_alias(three: Client) -> None:
    with pytest.raises(NotFound, match="has no version 9"):
        three.models.alias("m@9", "staging")
    with pytest.raises(NotFound, match="no alias 'staging'"):
        three.models.get("m@staging")
    with pytest.raises(InvalidRequest, match="cannot be an alias"):
        three.models.alias("m@1", "v2")  # would shadow version 2
    assert three.models.list()[0].aliases == {}


def test_deleting_an_alias_leaves_the_version(three: Client) -> None:
    three.models.alias("m@3", "staging")
    three.models.delete_alias("m", "staging")

    with pytest.raises(NotFound):
        three.models.get("m@staging")
    assert three.models.get("m@3").aliases == []


# --- deletion --------------------------------------------------------------------------------


def test_a_version_an_alias_points_at_is_kept_unless_forced(three: Client, state: Control) -> None:
    three.models.alias("m@3", "production")
    digest = three.models.get("m@3").artifact_digest

    with pytest.raises(Conflict, match="in use by alias production"):
        three.models.delete("m@3")
    assert three.models.get("m@production").version == 3

    three.models.delete("m@3", force=True)

    with pytest.raises(NotFound, match=r"m@3 was deleted on"):
        three.models.get("m@3")
    with pytest.raises(NotFound, match="no alias 'production'"):
        three.models.get("m@production")
    with pytest.raises(NotFound, match="was deleted"):
        three.models.card("m@3")
    assert three.models.get("m").version == 2  # latest skips the deleted one
    assert [v.version for v in three.models.versions("m")] == [1, 2]
    assert not state.ctx.blobs.exists(digest)
    # Numbers are never reused.
    assert three.models.register("m", _fit(7)).version == 4


def test_a_version_a_deployment_serves_is_kept_even_when_forced(three: Client) -> None:
    # In-process apps run no supervisor: the deployment is recorded, nothing starts.
    three.request("POST", "/api/v1/deployments", json={"name": "web", "model": "m@2"})

    with pytest.raises(Conflict, match="in use by deployment web"):
        three.models.delete("m@2", force=True)
    assert three.models.get("m@2").version == 2


def test_deleting_one_version_keeps_the_bytes_another_shares(
    client: Client, state: Control
) -> None:
    first = client.models.register("twin", _fit(0))
    body = first.model_dump(
        include={"artifact_digest", "flavour", "algorithm", "task", "signature"}
    )
    client.request("POST", "/api/v1/models/twin/versions", json=body)
    second = client.models.get("twin@2")
    assert first.artifact_digest == second.artifact_digest

    client.models.delete("twin@1")

    assert state.ctx.blobs.exists(second.artifact_digest)
    assert client.models.load("twin@2").predict([[1.0, 0.0]]).tolist() == [1]


# --- describe and compare --------------------------------------------------------------------


def test_a_description_reaches_the_version_and_its_card(three: Client) -> None:
    three.models.describe("m@2", "Flags rows where a is positive. Not for medical use.")

    assert three.models.get("m@2").description.startswith("Flags rows")
    assert "Not for medical use." in three.models.card("m@2")


def test_compare_lines_up_metrics_and_shows_only_the_params_that_differ(client: Client) -> None:
    client.models.register("c", _fit(0), metrics={"accuracy": 0.9}, params={"C": 1.0, "seed": 0})
    client.models.register(
        "c", _fit(0), metrics={"accuracy": 0.8, "f1_macro": 0.7}, params={"C": 2.0, "seed": 0}
    )

    table = client.models.compare(["c@1", "c@2"])

    assert table["versions"] == ["c@1", "c@2"]
    assert table["metrics"] == {"accuracy": [0.9, 0.8], "f1_macro": [None, 0.7]}
    assert table["params"] == {"C": [1.0, 2.0]}
    assert table["same_params"] == ["seed"]
    with pytest.raises(InvalidRequest, match="at least two"):
        client.models.compare(["c@1"])


def test_a_parent_must_exist_and_is_shown(client: Client) -> None:
    client.models.register("p", _fit(0))
    child = client.models.register("p", _fit(1), parent="p@1")
    assert child.parent == "p@1"
    with pytest.raises(NotFound):
        client.models.register("p", _fit(2), parent="p@9")
    assert [v.version for v in client.models.versions("p")] == [1, 2]


# --- training, evaluation, card and lineage end to end (runner in-process) -------------------


def _run(
    client: Client,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    job: Job,
) -> Job:
    assert job.state == JobState.queued, job.error
    scheduler.reconcile_once()
    assert run_runner(monkeypatch, platform.api, executor, job.id) == 0
    scheduler.reconcile_once()
    done = client.jobs.get(job.id)
    assert done.state == JobState.succeeded, done.error
    return done


@pytest.fixture(scope="module")
def trained(
    workspace_client: Any, state: Control, platform: Platform
) -> Iterator[tuple[Client, Any]]:
    """Model ``toy@1``, trained on dataset ``toy`` by the runner (in this process)."""
    executor = FakeExecutor()
    scheduler = Scheduler(state, executor)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "argv", list(sys.argv))
        monkeypatch.setattr(sys, "path", list(sys.path))

        def run(job: Job) -> Job:
            return _run(client, scheduler, executor, platform, monkeypatch, job)

        client = workspace_client()
        try:
            client.datasets.push(toy_frame(), name="toy", target="label")
            run(client.jobs.train("toy", algorithm="logistic_regression"))
            yield client, run
        finally:
            signal.signal(signal.SIGTERM, previous)
            tracking.set_current(None)


def test_training_records_its_held_out_evaluation_card_and_lineage(
    trained: tuple[Client, Any],
) -> None:
    client, _ = trained
    [evaluation] = client.models.evaluations("toy@1")

    assert evaluation.split == "test" and evaluation.dataset_version == "toy@v1"
    assert (
        evaluation.result["metrics"]["accuracy"] == client.models.get("toy@1").metrics["accuracy"]
    )
    assert set(evaluation.result["per_class"]) == {"no", "yes"}
    assert sorted(evaluation.result["plots"]) == ["confusion_matrix", "roc"]
    png = client.request("GET", f"/api/v1/blobs/{evaluation.result['plots']['roc']}").content
    assert png.startswith(b"\x89PNG")

    # The card: every section, from recorded facts, the same bytes every time.
    card = client.models.card("toy@1")
    assert card.startswith("---\n") and "library_name: sklearn" in card
    assert "- toy@v1" in card and "model-index:" in card
    for heading in ("## Intended use", "## Data", "## Training", "## Evaluation", "## Limitations"):
        assert heading in card
    assert "Not recorded." in card  # no description was given
    assert "held-out test split of toy@v1" in card
    assert client.models.card("toy@1") == card
    page = client.models.card("toy@1", format="html")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page

    # Lineage, up to the data and down to a derived version.
    client.models.register("toy", _fit(0), parent="toy@1")
    job_id = client.models.get("toy@1").job
    graph = client.models.lineage("toy@1")
    assert graph.root == "model_version:toy@1"
    assert {n.id for n in graph.nodes} == {
        "dataset_version:toy@v1",
        f"job:{job_id}",
        "model_version:toy@1",
        "model_version:toy@2",
    }
    assert {(e.source, e.target, e.relation) for e in graph.edges} == {
        ("dataset_version:toy@v1", f"job:{job_id}", "input"),
        (f"job:{job_id}", "model_version:toy@1", "produced"),
        ("model_version:toy@1", "model_version:toy@2", "parent"),
    }
    from_data = client.models.lineage("toy@v1", kind="dataset")
    assert "model_version:toy@2" in {n.id for n in from_data.nodes}
    with pytest.raises(NotFound):
        client.models.lineage("nothing@1")


def test_an_evaluate_job_reports_per_slice_metrics_on_another_dataset(
    trained: tuple[Client, Any],
) -> None:
    client, run = trained
    fresh = toy_frame(rows=120, seed=5)
    client.datasets.push(fresh, name="fresh", target="label")
    client.models.alias("toy@1", "production")

    bad = client.models.evaluate("toy@1", "fresh@v1", slices=["colur"])
    assert bad.state == JobState.failed and bad.error is not None
    assert "'colur'" in bad.error.message and "colour" in bad.error.message
    with pytest.raises(NotFound):
        client.models.evaluate("toy@7", "fresh@v1")

    job = run(
        client.models.evaluate(
            "toy@production", "fresh@v1", slices=["colour"], cpus=2, memory_mb=512
        )
    )

    assert job.spec.model == "toy@1"  # the alias was pinned at submit
    assert (job.spec.cpus, job.spec.memory_mb) == (2, 512)  # reserved like a training job's
    evaluation = client.models.evaluations("toy@1")[-1]
    assert evaluation.job == job.id and evaluation.split is None
    assert evaluation.dataset_version == "fresh@v1"
    model = client.models.load("toy@1")
    predicted = model.predict(fresh.drop(columns="label"))
    accuracy = float((predicted == fresh["label"].to_numpy()).mean())
    assert evaluation.result["metrics"]["accuracy"] == pytest.approx(accuracy)
    slices = evaluation.result["slices"]["colour"]
    assert sorted(s["value"] for s in slices) == ["blue", "green", "red"]
    assert sum(s["rows"] for s in slices) == 120
    for part in slices:
        rows = (fresh["colour"] == part["value"]).to_numpy()
        expected = float((predicted[rows] == fresh["label"].to_numpy()[rows]).mean())
        assert part["metrics"]["accuracy"] == pytest.approx(expected)
    assert "By `colour`:" in client.models.card("toy@1")


# --- explanations recorded at registration ---------------------------------------------------


def _explanation_section(card: str) -> str:
    return card.split("## Explanations\n", 1)[1].split("\n## ", 1)[0]


def _plot_digest(card: str) -> str:
    return _explanation_section(card).split("](plots/", 1)[1].split(".png)", 1)[0]


def test_a_trained_model_carries_its_background_and_a_global_explanation(
    trained: tuple[Client, Any], tmp_path: Path
) -> None:
    client, _ = trained
    card = client.models.card("toy@1")

    section = _explanation_section(card)
    assert "by exact linear SHAP over" in section and "of the held-out test split" in section
    assert "in log_odds space, against 100 background rows." in section
    table = [line for line in section.splitlines() if line[:2] == "| " and "---" not in line]
    names = [line.split(" | ")[0].strip("| ") for line in table]
    assert names[0] == "feature" and sorted(names[1:3]) == ["x1", "x2"]  # the label is x1 + x2
    png = client.request("GET", f"/api/v1/blobs/{_plot_digest(card)}").content
    assert png.startswith(b"\x89PNG")
    page = client.models.card("toy@1", format="html")
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page

    # The background travels inside the artifact, where a replica finds it.
    folder = unpack(client.models.pull("toy@1", tmp_path / "toy.zip"), tmp_path / "toy")
    background = stored_background(folder)
    assert background is not None and len(background.rows) == 100
    assert list(background.rows.columns) == ["x1", "x2", "colour", "site"]
    assert background.weights.sum() == pytest.approx(1.0)
    assert stored_background(tmp_path) is None


def test_a_training_job_whose_explanation_fails_still_registers_saying_why(
    trained: tuple[Client, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, run = trained

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("explainer crashed")

    monkeypatch.setattr("lepton.explain.summary.global_explanation", broken)
    job = run(client.jobs.train("toy", algorithm="logistic_regression", model="unexplained"))

    assert job.result is not None and job.result["model"] == "unexplained@1"
    card = client.models.card("unexplained@1")
    assert "## Explanations\n\nNot computed: RuntimeError: explainer crashed" in card
    assert "explanations not computed: RuntimeError" in capsys.readouterr().out  # the job log


def test_a_brought_in_model_with_data_is_explained_and_without_has_no_section(
    client: Client, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    model = LogisticRegression().fit(X, (X.a > 0).astype(int))

    client.models.register("byo", model, background=X.iloc[:200], X_sample=X.iloc[200:220])
    client.models.register("byo", model)

    section = _explanation_section(client.models.card("byo@1"))
    assert "by permutation SHAP over 20 rows given at registration" in section
    assert section.index("| a |") < section.index("| b |")
    folder = unpack(client.models.pull("byo@1", tmp_path / "byo.zip"), tmp_path / "byo")
    assert stored_background(folder) is not None
    assert "## Explanations" not in client.models.card("byo@2")


def test_explaining_a_brought_in_model_on_rows_it_cannot_take_registers_nothing(
    client: Client,
) -> None:
    model = _fit(0)

    with pytest.raises(InvalidRequest, match="lacks the model's input columns b"):
        client.models.register("bad", model, X_sample=pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(InvalidRequest, match=r"has shape \(3, 5\)"):
        client.models.register("bad", model, background=np.zeros((3, 5)))

    assert client.models.list() == []


def test_deleting_a_version_erases_its_explanation_plot(client: Client) -> None:
    X = pd.DataFrame({"a": np.linspace(-1, 1, 50), "b": np.linspace(1, -1, 50)})
    client.models.register("gone", _fit(0), background=X, X_sample=X.iloc[:5])
    digest = _plot_digest(client.models.card("gone@1"))

    client.models.delete("gone@1")

    with pytest.raises(NotFound):
        client.request("GET", f"/api/v1/blobs/{digest}")


def test_a_registration_with_a_malformed_explanation_registers_nothing(client: Client) -> None:
    body = client.models.register("shape", _fit(0)).model_dump(
        include={"artifact_digest", "flavour", "algorithm", "task", "signature"}
    )
    odd = {"kind": "audio", "method": "x"}
    unknown_plot = {"kind": "tabular", "features": [], "plot": "ef" * 32}

    with pytest.raises(InvalidRequest, match=r"explanations\.kind is 'audio'"):
        client.request("POST", "/api/v1/models/shape/versions", json=body | {"explanations": odd})
    with pytest.raises(NotFound, match=r"explanation plot .* was not uploaded"):
        client.request(
            "POST", "/api/v1/models/shape/versions", json=body | {"explanations": unknown_plot}
        )
    with pytest.raises(InvalidRequest, match="not_computed must be the reason, alone"):
        client.request(
            "POST",
            "/api/v1/models/shape/versions",
            json=body | {"explanations": {"not_computed": "x", "kind": "tabular"}},
        )

    assert [v.version for v in client.models.versions("shape")] == [1]
