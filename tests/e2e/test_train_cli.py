"""Training through the CLI as a user runs it: ``lepton train`` following a job to a registered
model, a misspelt target, ``--detach``, ``lepton job list|show|metrics|logs|cancel``, the model
registry, and ``lepton run`` with a script of one's own.

One server for the module. The jobs are module fixtures that each test names, so the order the
tests run in does not matter; every job runs to its end inside its fixture, so no runner is left
behind when the server stops.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli, Result

# A train job spends seconds importing scikit-learn in its runner on a loaded 2-core machine;
# the limit only stops a hung job from stalling the suite.
JOB_TIMEOUT_S = 180
JOB_ID = re.compile(r"\b[0-9a-f]{12}\b")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def no_traceback(result: Result) -> bool:
    return "Traceback" not in result.err and "Traceback" not in result.out


def flat(text: str) -> str:
    """Text with every run of whitespace as one space: rich wraps long lines at 80 columns."""
    return " ".join(text.split())


def ok(result: Result) -> Result:
    assert result.code == 0, (result.out, result.err)
    assert no_traceback(result), result.err
    return result


def row_of(table: str, first_cell: str) -> str:
    """The line of a rich table whose first cell is ``first_cell``."""
    cell = re.compile(rf"^\W*{re.escape(first_cell)}\s+│")
    found = next((line for line in table.splitlines() if cell.match(line)), None)
    assert found is not None, f"no row {first_cell!r} in:\n{table}"
    return found


@pytest.fixture(scope="module")
def breast_cancer(lepton: Cli) -> Result:
    return ok(lepton("dataset", "push", "--sample", "breast-cancer"))


@pytest.fixture(scope="module")
def trained(lepton: Cli, breast_cancer: Result) -> Result:
    """``lepton train breast-cancer --algorithm logistic_regression``, followed to its end."""
    return lepton(
        "train", "breast-cancer", "--algorithm", "logistic_regression", timeout=JOB_TIMEOUT_S
    )


@pytest.fixture(scope="module")
def job_id(trained: Result) -> str:
    found = re.search(r"Job ([0-9a-f]{12}) submitted", trained.out)
    assert found, trained.out
    return found.group(1)


@pytest.fixture(scope="module")
def detached(lepton: Cli, breast_cancer: Result) -> Result:
    return lepton(
        "train",
        "breast-cancer",
        "--algorithm",
        "random_forest",
        "--param",
        "n_estimators=50",
        "--model",
        "bc-forest",
        "--detach",
    )


@pytest.fixture(scope="module")
def detached_id(detached: Result) -> str:
    found = re.search(r"Submitted job ([0-9a-f]{12})\.", detached.out)
    assert found, detached.out
    return found.group(1)


@pytest.fixture(scope="module")
def followed(lepton: Cli, detached_id: str) -> Result:
    """``lepton job logs ID -f`` on the detached job: it returns when the job ends."""
    return lepton("job", "logs", detached_id, "-f", timeout=JOB_TIMEOUT_S)


SCRIPT = """\
import lepton
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

frame = lepton.load_dataset()
X, y = frame.drop(columns="diagnosis"), frame["diagnosis"]
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
for step, c in enumerate([0.01, 0.1, 1.0]):
    model.set_params(logisticregression__C=c).fit(X, y)
    lepton.log(step=step, train_accuracy=model.score(X, y))
lepton.save_model(model, name="bc-script", metrics={"train_accuracy": model.score(X, y)})
print("script done")
"""


@pytest.fixture(scope="module")
def script_run(
    lepton: Cli, breast_cancer: Result, tmp_path_factory: pytest.TempPathFactory
) -> Result:
    script = tmp_path_factory.mktemp("scripts") / "fit_bc.py"
    script.write_text(SCRIPT)
    return lepton("run", str(script), "--dataset", "breast-cancer", timeout=JOB_TIMEOUT_S)


# --- lepton train ---------------------------------------------------------------------------


def test_train_follows_the_job_and_prints_the_model_and_test_metrics(
    trained: Result, job_id: str
) -> None:
    ok(trained)
    out = flat(trained.out)
    assert f"Job {job_id} submitted; following it" in out
    assert "test metrics: accuracy=" in out  # the job's own log, streamed
    assert f"Job {job_id} succeeded. Registered breast-cancer@1." in out
    found = re.search(r"Test metrics: accuracy (\d\.\d{4})", out)
    assert found, out
    assert float(found.group(1)) > 0.9


def test_a_misspelt_target_exits_2_suggesting_the_column(
    lepton: Cli, breast_cancer: Result
) -> None:
    result = lepton("train", "breast-cancer", "--target", "diagnosys")

    assert result.code == 2, (result.out, result.err)
    assert no_traceback(result)
    err = flat(result.err)
    assert "'diagnosys'" in err and "the closest is 'diagnosis'" in err
    assert "fix: pass --target 'diagnosis'" in err


def test_an_unknown_algorithm_exits_2_suggesting_the_closest(
    lepton: Cli, breast_cancer: Result
) -> None:
    result = lepton("train", "breast-cancer", "--algorithm", "random_forrest")

    assert result.code == 2, (result.out, result.err)
    assert no_traceback(result)
    assert "did you mean random_forest?" in flat(result.err)


def test_a_bad_param_exits_2_before_anything_is_queued(lepton: Cli, breast_cancer: Result) -> None:
    result = lepton("train", "breast-cancer", "--algorithm", "logistic_regression", "--param", "C")

    assert result.code == 2
    assert "--param 'C' is not NAME=VALUE" in flat(result.err)
    assert no_traceback(result)


def test_detach_prints_the_job_id_and_how_to_follow_it(
    detached: Result, detached_id: str, followed: Result
) -> None:
    ok(detached)
    assert f"Follow it: lepton job logs {detached_id} -f" in flat(detached.out)
    ok(followed)
    out = flat(followed.out)
    assert "test metrics: accuracy=" in out
    assert f"Job {detached_id} succeeded. Registered bc-forest@1." in out


# --- lepton job ... -----------------------------------------------------------------------------


def test_job_list_shows_each_job_and_its_state(
    lepton: Cli, job_id: str, followed: Result, detached_id: str
) -> None:
    result = ok(lepton("job", "list"))

    assert "succeeded" in row_of(result.out, job_id)  # ids stay whole at 80 columns
    assert "succeeded" in row_of(result.out, detached_id)
    # Refs fold at 80 columns (see the report); a wide terminal shows them whole.
    wide = ok(lepton("job", "list", columns=160))
    assert "breast-cancer@1" in row_of(wide.out, job_id)
    assert "bc-forest@1" in row_of(wide.out, detached_id)
    listed = json.loads(ok(lepton("job", "list", "--json")).out)
    states = {j["id"]: j["state"] for j in listed}
    assert states[job_id] == states[detached_id] == "succeeded"
    assert all(JOB_ID.fullmatch(j["id"]) for j in listed)


def test_job_show_has_the_state_result_and_environment(lepton: Cli, job_id: str) -> None:
    result = ok(lepton("job", "show", job_id))

    assert "succeeded" in row_of(result.out, "state")
    assert "breast-cancer@v1" in row_of(result.out, "dataset")
    assert re.search(r"\b1\b", row_of(result.out, "attempts"))
    out = flat(result.out)
    assert "environment" in out and "scikit-learn" in out and "python" in out
    assert "breast-cancer@1" in out
    shown = json.loads(ok(lepton("job", "show", job_id, "--json")).out)
    assert shown["state"] == "succeeded" and shown["spec"]["algorithm"] == "logistic_regression"
    assert shown["environment"]["numpy"]


def test_job_show_plot_writes_a_png_of_the_metrics(
    lepton: Cli, job_id: str, tmp_path: Path
) -> None:
    out = tmp_path / "metrics.png"

    result = ok(lepton("job", "show", job_id, "--plot", str(out)))

    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 1000
    assert f"Wrote {out}" in flat(result.out)


def test_job_metrics_shows_each_metric_once(lepton: Cli, job_id: str) -> None:
    points = json.loads(ok(lepton("job", "metrics", job_id, "--json")).out)
    names = sorted({p["name"] for p in points})
    assert names, "the job logged no metrics"

    result = ok(lepton("job", "metrics", job_id))

    for name in names:
        row_of(result.out, name)


def test_job_logs_prints_the_whole_log(lepton: Cli, job_id: str) -> None:
    result = ok(lepton("job", "logs", job_id))

    assert result.out.startswith("--- attempt 1 ---\n")
    assert f"job {job_id}: train, attempt 1" in result.out
    assert "breast-cancer@v1: classification on tabular data, target diagnosis" in result.out
    assert "test metrics: accuracy=" in result.out
    assert result.out.endswith(f"registered breast-cancer@1\njob {job_id} succeeded\n")


def test_job_cancel_of_an_ended_job_exits_5(lepton: Cli, job_id: str) -> None:
    result = lepton("job", "cancel", job_id)

    assert result.code == 5
    assert "already ended (succeeded)" in flat(result.err)
    assert no_traceback(result)


def test_job_show_of_an_unknown_job_exits_4(lepton: Cli) -> None:
    result = lepton("job", "show", "0123456789ab")

    assert result.code == 4
    assert "job '0123456789ab' does not exist" in flat(result.err)
    assert "lepton job list" in flat(result.err)


# --- the registry ---------------------------------------------------------------------------


def test_model_list_and_show_the_trained_model(lepton: Cli, job_id: str, followed: Result) -> None:
    listed = ok(lepton("model", "list", columns=160))
    row = row_of(listed.out, "breast-cancer")
    assert "breast-cancer@1" in row and "logistic_regression" in row
    assert "bc-forest@1" in row_of(listed.out, "bc-forest")

    shown = ok(lepton("model", "show", "breast-cancer"))

    out = flat(shown.out)
    assert (
        "breast-cancer@1: logistic_regression (sklearn), classification, trained on "
        f"breast-cancer@v1 by job {job_id}"
    ) in out
    assert re.search(r"accuracy\W+0\.9\d{3}", out), out


# --- lepton run -----------------------------------------------------------------------------


def test_run_a_script_that_logs_and_saves_a_model(lepton: Cli, script_run: Result) -> None:
    ok(script_run)
    out = flat(script_run.out)
    assert "script done" in out
    found = re.search(r"Job ([0-9a-f]{12}) succeeded\. Registered bc-script@1\.", out)
    assert found, out

    points = json.loads(ok(lepton("job", "metrics", found.group(1), "--json")).out)
    assert [(p["step"], p["name"]) for p in points] == [(i, "train_accuracy") for i in range(3)]
    shown = flat(ok(lepton("model", "show", "bc-script")).out)
    assert (
        "bc-script@1: custom:Pipeline (sklearn), classification, trained on breast-cancer@v1"
        in shown
    )


def test_run_a_script_whose_process_dies_exits_1_naming_the_exit_code(
    lepton: Cli, tmp_path: Path
) -> None:
    # The runner's process is killed outright (as by the OOM killer): no report, no retry (a
    # script job has none by default). That is no mistake of the user's command line: exit 1.
    script = tmp_path / "oom.py"
    script.write_text("import os, signal\n\nos.kill(os.getpid(), signal.SIGKILL)\n")

    result = lepton("run", str(script), timeout=JOB_TIMEOUT_S)

    assert no_traceback(result)
    err = flat(result.err)
    assert "ended without a result (exit code -9) on attempt 1 of 1" in err
    assert "fix: read its log: lepton job logs" in err
    assert result.code == 1, (result.out, result.err)
