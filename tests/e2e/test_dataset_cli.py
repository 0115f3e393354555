"""A user's datasets through the CLI: push (samples, CSV, again), show, the PII scan, transform,
pull, split, delete, and the exit codes of mistakes (2 bad file, 4 not found, 5 conflict).

One server for the module; the datasets it holds are pushed by module fixtures, so each test
states which ones it needs and the order the tests run in does not matter.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli, Result

HEART_ROWS = 300
# A masked e-mail keeps the first letter of the local part and of the host, and the TLD.
MASKED_EMAIL = re.compile(r"\b\w\*\*\*@\w\*\*\*\.org\b")


def no_traceback(result: Result) -> bool:
    return "Traceback" not in result.err and "Traceback" not in result.out


def flat(text: str) -> str:
    """Text with every run of whitespace as one space: rich wraps long lines at 80 columns."""
    return " ".join(text.split())


def row_of(table: str, first_cell: str) -> str:
    """The line of a rich table whose first cell is ``first_cell``."""
    cell = re.compile(rf"^\W*{re.escape(first_cell)}\s+│")
    found = next((line for line in table.splitlines() if cell.match(line)), None)
    assert found is not None, f"no row {first_cell!r} in:\n{table}"
    return found


def pushed(result: Result) -> Result:
    assert result.code == 0, result.err
    assert no_traceback(result)
    return result


@pytest.fixture(scope="module")
def heart_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clinical table with an id column and one e-mail address per patient."""
    path = tmp_path_factory.mktemp("data") / "heart.csv"
    rng = random.Random(7)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["patient_id", "age", "sex", "chol", "email", "label"])
        for i in range(HEART_ROWS):
            first = rng.choice(["ann", "bob", "carla", "dev", "emma", "femi"])
            out.writerow(
                [
                    f"P{i:05d}",
                    rng.randint(29, 77),
                    rng.choice(["f", "m"]),
                    rng.randint(120, 400),
                    f"{first}.{i}@clinic-mail.org",
                    rng.choice(["disease", "healthy"]),
                ]
            )
    return path


@pytest.fixture(scope="module")
def breast_cancer(lepton: Cli) -> Result:
    return pushed(lepton("dataset", "push", "--sample", "breast-cancer"))


@pytest.fixture(scope="module")
def heart(lepton: Cli, heart_csv: Path) -> Result:
    return pushed(lepton("dataset", "push", str(heart_csv), "--name", "heart", "--target", "label"))


@pytest.fixture(scope="module")
def heart_v2(lepton: Cli, heart: Result) -> Result:
    return pushed(
        lepton("dataset", "transform", "heart", "--anonymize", "email", "--drop", "patient_id")
    )


@pytest.fixture(scope="module")
def mnist(lepton: Cli) -> Result:
    return pushed(lepton("dataset", "push", "--sample", "mnist"))


def test_push_sample_prints_the_ref_and_the_rows(breast_cancer: Result) -> None:
    out = flat(breast_cancer.out)

    assert "Pushed breast-cancer@v1: 569 rows, 31 columns" in out
    assert "target diagnosis" in out
    assert "lepton dataset show breast-cancer@v1" in out  # the next command


def test_show_lists_the_schema_target_and_class_balance(lepton: Cli, breast_cancer: Result) -> None:
    result = lepton("dataset", "show", "breast-cancer")

    assert result.code == 0, result.err
    assert "breast-cancer@v1" in result.out
    assert re.search(r"column\s+┃\s+kind\s+┃\s+nulls\s+┃\s+distinct", result.out), result.out
    assert re.search(r"│\s+numeric\s+│\s+0\s+│\s+456\s+│", row_of(result.out, "mean radius"))
    assert re.search(r"│\s+categorical\s+│\s+0\s+│\s+2\s+│", row_of(result.out, "diagnosis"))
    out = flat(result.out)
    assert "target: diagnosis" in out
    assert "classes: benign 357 (63%), malignant 212 (37%)" in out  # sklearn's 569 tumours


def test_pushing_a_csv_with_emails_shows_masked_pii_and_how_to_anonymise(
    heart: Result, heart_csv: Path
) -> None:
    out = flat(heart.out)

    assert f"Pushed heart@v1: {HEART_ROWS} rows, 6 columns (csv), target label." in out
    assert "PII scan" in heart.out
    row = row_of(heart.out, "email")
    assert re.search(rf"│\s+email\s+│\s+{HEART_ROWS}\s+│", row), row
    assert MASKED_EMAIL.search(row), row
    assert "@clinic-mail.org" not in heart.out  # no raw address, not even its domain
    assert "lepton dataset transform heart@v1 --anonymize email" in out


def test_pushing_the_same_file_again_returns_the_stored_version(
    lepton: Cli, heart: Result, heart_csv: Path
) -> None:
    again = lepton("dataset", "push", str(heart_csv), "--name", "heart", "--target", "label")
    versions = lepton("dataset", "show", "heart@v1", "--json")

    assert again.code == 0, again.err
    assert "Already stored as heart@v1" in flat(again.out)
    assert "Pushed" not in again.out
    assert json.loads(versions.out)["version"] == 1


def test_transform_derives_v2_from_v1(lepton: Cli, heart_v2: Result) -> None:
    shown = lepton("dataset", "show", "heart@v2", "--json")

    assert f"Made heart@v2 from heart@v1: {HEART_ROWS} rows, 5 columns." in flat(heart_v2.out)
    assert "PII scan: nothing found." in heart_v2.out  # the hashes no longer look like e-mails
    assert shown.code == 0, shown.err
    version = json.loads(shown.out)
    assert version["parent"] == "heart@v1"
    assert [c["name"] for c in version["schema_"]] == ["age", "sex", "chol", "email", "label"]
    assert version["target"] == "label"
    assert version["pii"]["findings"] == []


def test_pull_writes_the_pushed_bytes(
    lepton: Cli, heart: Result, heart_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"

    result = lepton("dataset", "pull", "heart@v1", "-o", str(out))

    assert result.code == 0, result.err
    assert out.read_bytes() == heart_csv.read_bytes()
    assert f"{heart_csv.stat().st_size:,} bytes" in flat(result.out)


def test_split_of_mnist_prints_the_counts(lepton: Cli, mnist: Result) -> None:
    result = lepton(
        "dataset", "split", "mnist", "--train", "0.8", "--validation", "0", "--test", "0.2"
    )

    assert "Pushed mnist@v1: 10,000 rows" in flat(mnist.out)
    assert result.code == 0, result.err
    out = flat(result.out)
    assert "train 8,000" in out
    assert "validation 0," in out
    assert "test 2,000" in out


def test_removing_a_version_with_a_derived_one_exits_5_and_says_force(
    lepton: Cli, heart_v2: Result
) -> None:
    result = lepton("dataset", "rm", "heart@v1")
    still_there = lepton("dataset", "show", "heart@v1")

    assert result.code == 5
    assert no_traceback(result)
    assert result.err.startswith("error:")
    err = flat(result.err)
    assert "heart@v2" in err  # what depends on it
    assert "fix:" in err and "--force" in err
    assert still_there.code == 0, still_there.err


def test_a_ragged_csv_exits_2_naming_the_file_and_line(lepton: Cli, tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")

    result = lepton("dataset", "push", str(ragged))
    nothing_stored = lepton("dataset", "show", "ragged")

    assert result.code == 2
    assert no_traceback(result)
    err = flat(result.err)
    assert "ragged.csv, line 3" in err
    assert "fix:" in err
    assert nothing_stored.code == 4


def test_list_json_parses_and_lists_the_datasets(
    lepton: Cli, breast_cancer: Result, heart_v2: Result, mnist: Result
) -> None:
    result = lepton("dataset", "list", "--json")

    assert result.code == 0, result.err
    datasets = {d["name"]: d for d in json.loads(result.out)}
    assert {"breast-cancer", "heart", "mnist"} <= set(datasets)
    assert datasets["heart"]["versions"] == 2
    assert datasets["heart"]["latest"]["ref"] == "heart@v2"
    assert datasets["mnist"]["latest"]["rows"] == 10_000


def test_show_of_an_unknown_dataset_exits_4(lepton: Cli) -> None:
    result = lepton("dataset", "show", "nope")

    assert result.code == 4
    assert no_traceback(result)
    assert "'nope'" in result.err
    assert "lepton dataset list" in flat(result.err)  # the fix
