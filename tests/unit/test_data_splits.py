"""Splits: exact counts, per-class proportions, determinism, time order and refusals."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lepton.data.splits import make_split
from lepton.errors import InvalidRequest
from lepton.schemas import Column, ColumnKind, SplitSpec

# Rows per digit in the real MNIST test set (t10k): 980 zeros, 1135 ones, ...
MNIST_T10K = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def col(name: str, kind: str, dtype: str) -> Column:
    return Column(name=name, kind=ColumnKind(kind), dtype=dtype, nulls=0)


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(data), path)
    return path


@pytest.fixture
def mnist(tmp_path: Path) -> tuple[Path, list[Column], np.ndarray]:
    labels = np.repeat(np.arange(10), MNIST_T10K)
    np.random.default_rng(7).shuffle(labels)
    path = write(tmp_path, {"pixels": np.zeros(len(labels)), "label": labels})
    columns = [col("pixels", "numeric", "double"), col("label", "numeric", "int64")]
    return path, columns, labels


def test_mnist_80_20_is_exact_and_every_digit_within_one_row(mnist: Any) -> None:
    path, columns, labels = mnist
    spec = SplitSpec(train=0.8, validation=0, test=0.2, seed=0)
    result = make_split(path, columns, spec, default_target="label")
    assert result.strategy == "stratified"
    assert result.counts == {"train": 8000, "validation": 0, "test": 2000}
    assert result.assignment.dtype == np.uint8 and len(result.assignment) == 10_000
    for digit, size in enumerate(MNIST_T10K):
        in_train = int(np.count_nonzero(result.assignment[labels == digit] == 0))
        assert abs(in_train - 0.8 * size) <= 1, (digit, in_train, size)


def test_stratified_three_way_follows_each_class(mnist: Any) -> None:
    path, columns, labels = mnist
    result = make_split(path, columns, SplitSpec(seed=3), default_target="label")
    assert result.counts == {"train": 8000, "validation": 1000, "test": 1000}
    for digit, size in enumerate(MNIST_T10K):
        got = np.bincount(result.assignment[labels == digit], minlength=3)
        assert np.all(np.abs(got - size * np.array([0.8, 0.1, 0.1])) <= 1), (digit, got)


def test_same_seed_same_assignment_other_seed_other(mnist: Any) -> None:
    path, columns, _ = mnist
    first = make_split(path, columns, SplitSpec(seed=1), "label").assignment
    again = make_split(path, columns, SplitSpec(seed=1), "label").assignment
    other = make_split(path, columns, SplitSpec(seed=2), "label").assignment
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("strategy", ["random", "stratified"])
@pytest.mark.parametrize("n", [7, 10, 101, 997])
def test_counts_are_exact_largest_remainder(tmp_path: Path, strategy: str, n: int) -> None:
    path = write(tmp_path, {"y": np.arange(n) % 3})
    spec = SplitSpec(strategy=strategy, train=0.7, validation=0.15, test=0.15)
    result = make_split(path, [col("y", "categorical", "int64")], spec, "y")
    quota = n * np.array([0.7, 0.15, 0.15])
    counts = np.array([result.counts[k] for k in ("train", "validation", "test")])
    assert counts.sum() == n and np.all(np.abs(counts - quota) < 1 + 1e-9)
    assert np.array_equal(np.bincount(result.assignment, minlength=3), counts)


def test_small_class_still_reaches_every_split(tmp_path: Path) -> None:
    labels = ["big"] * 40 + ["small"] * 3 + ["single"]
    path = write(tmp_path, {"y": labels})
    result = make_split(path, [col("y", "categorical", "string")], SplitSpec(), "y")
    assert result.counts == {"train": 35, "validation": 5, "test": 4}
    small = result.assignment[np.array(labels) == "small"]
    assert sorted(small.tolist()) == [0, 1, 2]  # 3 rows at 80/10/10: one each, not 3/0/0


def test_nulls_in_target_form_their_own_class(tmp_path: Path) -> None:
    path = write(tmp_path, {"y": ["a", None] * 10})
    result = make_split(path, [col("y", "categorical", "string")], SplitSpec(), "y")
    assert sum(result.counts.values()) == 20
    assert np.bincount(result.assignment[1::2], minlength=3).tolist() == [8, 1, 1]


def test_time_split_puts_earliest_rows_in_train(tmp_path: Path) -> None:
    start = datetime(2024, 1, 1)
    days = np.random.default_rng(0).permutation(20) // 2  # pairs of equal times: order is stable
    times = [start + timedelta(days=int(d)) for d in days]
    path = write(tmp_path, {"when": times, "x": np.arange(20.0)})
    columns = [col("when", "datetime", "timestamp[us]"), col("x", "numeric", "double")]
    result = make_split(path, columns, SplitSpec(train=0.6, validation=0.2, test=0.2), None)
    assert result.strategy == "time"
    assert result.counts == {"train": 12, "validation": 4, "test": 4}
    order = np.argsort(days, kind="stable")
    assert result.assignment[order].tolist() == [0] * 12 + [1] * 4 + [2] * 4


def test_time_split_refuses_missing_times(tmp_path: Path) -> None:
    path = write(tmp_path, {"when": [datetime(2024, 1, d) for d in range(1, 9)] + [None, None]})
    columns = [col("when", "datetime", "timestamp[us]")]
    with pytest.raises(InvalidRequest, match=r"'when' has missing values \(first at row 8"):
        make_split(path, columns, SplitSpec(strategy="time"), None)


@pytest.mark.parametrize(
    ("kind", "dtype", "values", "expected"),
    [
        ("categorical", "string", ["a", "b"] * 50, "stratified"),
        ("boolean", "bool", [True, False] * 50, "stratified"),
        ("numeric", "int64", list(range(10)) * 10, "stratified"),  # 10 values: a class label
        ("numeric", "int64", list(range(100)), "time"),  # 100 values: a count, not a class
        ("numeric", "double", [0.5, 1.5] * 50, "time"),
        ("text", "string", [f"t{i}" for i in range(100)], "time"),
    ],
)
def test_auto_picks_by_target_kind(
    tmp_path: Path, kind: str, dtype: str, values: list[Any], expected: str
) -> None:
    when = [datetime(2024, 1, 1) + timedelta(hours=h) for h in range(100)]
    path = write(tmp_path, {"y": values, "when": when})
    columns = [col("y", kind, dtype), col("when", "datetime", "timestamp[us]")]
    assert make_split(path, columns, SplitSpec(), "y").strategy == expected


def test_auto_without_target_or_time_is_random(tmp_path: Path) -> None:
    path = write(tmp_path, {"x": np.arange(50.0)})
    result = make_split(path, [col("x", "numeric", "double")], SplitSpec(), None)
    assert result.strategy == "random"
    assert result.counts == {"train": 40, "validation": 5, "test": 5}


def test_spec_target_overrides_default_target(tmp_path: Path) -> None:
    path = write(tmp_path, {"a": [f"t{i}" for i in range(50)], "b": ["p"] * 10 + ["q"] * 40})
    columns = [col("a", "text", "string"), col("b", "categorical", "string")]
    spec = SplitSpec(target="b", train=0.5, validation=0, test=0.5)
    result = make_split(path, columns, spec, default_target="a")
    assert result.strategy == "stratified"
    assert np.bincount(result.assignment[:10], minlength=3).tolist() == [5, 0, 5]
    assert make_split(path, columns, SplitSpec(), default_target="a").strategy == "random"


def test_fractions_must_sum_to_one(tmp_path: Path) -> None:
    path = write(tmp_path, {"x": np.arange(10)})
    with pytest.raises(InvalidRequest, match=r"train=0\.8, validation=0\.3, test=0\.1 sum to 1\.2"):
        make_split(path, [col("x", "numeric", "int64")], SplitSpec(validation=0.3), None)


def test_unknown_target_lists_columns_and_closest(tmp_path: Path) -> None:
    path = write(tmp_path, {"age": [1, 2, 3], "label": [0, 1, 0]})
    columns = [col("age", "numeric", "int64"), col("label", "categorical", "int64")]
    with pytest.raises(InvalidRequest) as caught:
        make_split(path, columns, SplitSpec(target="lable"), None)
    assert "names column 'lable'" in caught.value.message
    assert "columns are: age, label" in caught.value.message
    assert "closest is 'label'" in caught.value.message


def test_too_small_dataset_says_how_many_rows_are_needed(tmp_path: Path) -> None:
    path = write(tmp_path, {"x": [1, 2]})
    with pytest.raises(InvalidRequest, match=r"has 2 rows.*needs at least 3 rows"):
        make_split(path, [col("x", "numeric", "int64")], SplitSpec(), None)
    result = make_split(
        path, [col("x", "numeric", "int64")], SplitSpec(train=0.9, validation=0, test=0.1), None
    )
    assert result.counts == {"train": 1, "validation": 0, "test": 1}  # test gets its one row


def test_stratified_without_target_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"x": np.arange(10)})
    with pytest.raises(InvalidRequest, match="needs a target column"):
        make_split(path, [col("x", "numeric", "int64")], SplitSpec(strategy="stratified"), None)
