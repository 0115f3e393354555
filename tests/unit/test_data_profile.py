"""Schema inference and profiles of small Parquet files, checked against numpy and pandas."""

from __future__ import annotations

import datetime as dt
import json
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lepton.data.profile import profile
from lepton.data.schema import guess_target, infer_schema
from lepton.errors import DataError
from lepton.schemas import ColumnKind, ColumnProfile, Profile


def write(tmp_path: Path, columns: dict[str, Any], **kwargs: Any) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path, **kwargs)
    return path


def run(path: Path, target: str | None = None) -> Profile:
    return profile(path, infer_schema(path), target, target_guessed=False)


def column(p: Profile, name: str) -> ColumnProfile:
    return next(c for c in p.column_profiles if c.name == name)


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


def kinds(path: Path) -> dict[str, ColumnKind]:
    return {c.name: c.kind for c in infer_schema(path)}


def test_every_kind_is_inferred(tmp_path: Path) -> None:
    n = 200
    rng = np.random.default_rng(0)
    path = write(
        tmp_path,
        {
            "age": pa.array(rng.integers(18, 90, n)),
            "score": pa.array(rng.normal(size=n)),
            "smoker": pa.array(rng.random(n) < 0.3),
            "seen_at": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)]
            ),
            "born": pa.array([dt.date(1990, 1, 1) + dt.timedelta(days=i) for i in range(n)]),
            "visit": [f"2024-03-{1 + i % 28:02d}" for i in range(n)],
            "city": [["Oslo", "Lima", "Pune"][i % 3] for i in range(n)],
            "note": [f"patient {i} reports mild symptoms after {i % 7} days" for i in range(n)],
        },
    )
    cols = {c.name: c for c in infer_schema(path)}
    assert {name: c.kind for name, c in cols.items()} == {
        "age": ColumnKind.numeric,
        "score": ColumnKind.numeric,
        "smoker": ColumnKind.boolean,
        "seen_at": ColumnKind.datetime,
        "born": ColumnKind.datetime,
        "visit": ColumnKind.datetime,
        "city": ColumnKind.categorical,
        "note": ColumnKind.text,
    }
    assert cols["visit"].dtype == "string"  # kept as stored
    assert cols["seen_at"].dtype == "timestamp[us]"


def test_image_column_is_recognised_and_its_sizes_and_modes_profiled(tmp_path: Path) -> None:
    images = [
        png((28, 28), "L"),
        png((32, 20), "RGB"),
        png((64, 48), "RGB"),
        None,
        png((10, 12), "RGBA"),
    ]
    path = write(tmp_path, {"image": pa.array(images, pa.binary()), "label": [0, 1, 1, 0, 2]})
    assert kinds(path) == {"image": ColumnKind.image, "label": ColumnKind.numeric}
    assert guess_target(infer_schema(path), path) == "label"
    p = run(path, "label")
    img = column(p, "image")
    assert img.nulls == 1 and img.distinct == 4
    assert img.image is not None
    assert (img.image.width_min, img.image.width_max) == (10, 64)
    assert (img.image.height_min, img.image.height_max) == (12, 48)
    assert {m.value: m.count for m in img.image.modes} == {"RGB": 2, "L": 1, "RGBA": 1}
    assert p.class_balance is not None
    assert [(c.value, c.count) for c in p.class_balance] == [("0", 2), ("1", 2), ("2", 1)]


def test_binary_that_is_not_an_image_is_not_called_one(tmp_path: Path) -> None:
    path = write(tmp_path, {"blob": pa.array([b"\x00\x01", b"BMx", b"hello"] * 5, pa.binary())})
    assert kinds(path)["blob"] is ColumnKind.text


def test_iso_date_strings_need_95_percent_to_be_dates(tmp_path: Path) -> None:
    dates = [f"2024-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z" for i in range(100)]
    mostly = dates[:96] + ["unknown"] * 4
    half = dates[:90] + ["n/a"] * 10
    path = write(tmp_path, {"mostly": mostly, "half": half, "bad_month": ["2024-13-01"] * 100})
    assert kinds(path) == {
        "mostly": ColumnKind.datetime,
        "half": ColumnKind.text,  # 90% dates is not enough
        "bad_month": ColumnKind.categorical,  # month 13 is no date
    }
    p = run(path)
    assert (column(p, "mostly").min, column(p, "mostly").max) == (dates[0], max(dates[:96]))


def test_categorical_versus_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 10_000
    path = write(
        tmp_path,
        {
            "grade": [f"g{i % 40}" for i in range(n)],  # 40 levels
            "city": [f"city{i}" for i in rng.integers(0, 400, n)],  # 400 levels, 4%
            "user": [f"user{i}" for i in rng.integers(0, 3000, n)],  # 30%: ids, not levels
        },
    )
    assert kinds(path) == {
        "grade": ColumnKind.categorical,
        "city": ColumnKind.categorical,
        "user": ColumnKind.text,
    }
    # 30 different sentences in 30 rows are text, though under 50 distinct.
    small = write(tmp_path, {"review": [f"great product number {i}" for i in range(30)]})
    assert kinds(small) == {"review": ColumnKind.text}


def test_null_counts_match_in_schema_and_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "x": pa.array([1.0, None, 3.0, None, 5.0]),
            "s": pa.array(["a", None, "b", "a", None]),
            "b": pa.array([True, None, False, True, True]),
        },
        row_group_size=2,
    )
    assert {c.name: c.nulls for c in infer_schema(path)} == {"x": 2, "s": 2, "b": 1}
    p = run(path)
    assert p.rows == 5 and p.columns == 3
    assert column(p, "x").nulls == 2 and column(p, "x").null_fraction == pytest.approx(0.4)
    assert column(p, "s").distinct == 2


def test_duplicate_rows_are_counted_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 5_000
    frame = pd.DataFrame(
        {
            "i": rng.integers(0, 3, n),
            "f": rng.choice([0.5, 1.5, np.nan], n),
            "s": rng.choice(np.array(["a", "b", None], dtype=object), n),
            "t": rng.choice(["x y", "y x"], n),
            "b": rng.choice([True, False], n),
        }
    )
    path = write(tmp_path, {c: pa.array(frame[c]) for c in frame.columns}, row_group_size=1_000)
    expected = int(frame.duplicated().sum())
    assert 0 < expected < n
    assert run(path).duplicate_rows == expected
    # Values that only differ across columns are no duplicates.
    swapped = write(tmp_path, {"a": ["x", "y"], "b": ["y", "x"]})
    assert run(swapped).duplicate_rows == 0


def test_duplicates_and_distinct_survive_parquet_dictionary_fallback(tmp_path: Path) -> None:
    # A 1 kB dictionary page limit makes the writer fall back to plain pages mid-column, and
    # 4 row groups give 4 dictionaries: codes must still mean one string each.
    words = [f"value-{i:06d}-" + "x" * 20 for i in range(6_000)]
    path = tmp_path / "data.parquet"
    table = pa.table({"s": words + words[::-1], "z": pa.array([0.0, -0.0] * 6_000)})
    pq.write_table(table, path, row_group_size=3_000, dictionary_pagesize_limit=1024)
    p = run(path)
    assert column(p, "s").distinct == 6_000
    assert p.duplicate_rows == 6_000  # -0.0 equals 0.0, as in pandas


def test_empty_table_profiles_without_error(tmp_path: Path) -> None:
    path = write(tmp_path, {"x": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    p = run(path, "s")
    assert p.rows == 0 and p.duplicate_rows == 0
    assert column(p, "x").mean is None and column(p, "s").distinct == 0


def test_numeric_statistics_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(10, 3, 1_001)
    arr = pa.array(np.append(values, np.nan), mask=np.append(rng.random(1_001) < 0.1, False))
    path = write(tmp_path, {"x": arr, "n": pa.array(rng.integers(-50, 50, 1_002))})
    p = run(path)
    x = column(p, "x")
    kept = np.asarray(arr.to_numpy(zero_copy_only=False))
    kept = kept[~np.isnan(kept)]
    assert x.nulls == int(arr.null_count)
    assert x.mean == pytest.approx(kept.mean())
    assert x.std == pytest.approx(kept.std(ddof=1))
    assert (x.min, x.max) == (kept.min(), kept.max())
    assert x.quantiles is not None
    expected = np.quantile(kept, [0.25, 0.5, 0.75])
    assert [x.quantiles[k] for k in ("p25", "p50", "p75")] == pytest.approx(expected)
    assert x.histogram is not None
    assert len(x.histogram.counts) == 20 and len(x.histogram.edges) == 21
    assert sum(x.histogram.counts) == len(kept)
    assert x.distinct == len(kept) + 1  # NaN is a value, not a missing one
    ints = rng.integers(-50, 50, 1_002)
    n = column(run(write(tmp_path, {"n": pa.array(ints)})), "n")
    assert n.quantiles is not None
    assert n.quantiles["p50"] == pytest.approx(np.quantile(ints, 0.5))
    assert n.distinct == len(np.unique(ints))


def test_constant_column_has_one_bin_and_no_spread(tmp_path: Path) -> None:
    p = run(write(tmp_path, {"c": [7] * 10, "one": pa.array([1.0] + [None] * 9)}))
    c = column(p, "c")
    assert c.histogram is not None
    assert c.histogram.counts == [10] and c.histogram.edges == [7.0, 7.0]
    assert c.std == 0.0 and c.distinct == 1
    assert column(p, "one").std is None  # one value: no sample deviation


def test_non_finite_values_never_reach_the_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "inf": pa.array([np.inf, -np.inf, np.nan, 1.0, 2.0]),
            "nan": pa.array([np.nan] * 5),
            "empty": pa.array([None] * 5, pa.float64()),
        },
    )
    p = run(path)
    text = p.model_dump_json()

    def refuse(token: str) -> float:
        raise AssertionError(f"non-finite {token} in profile JSON")

    json.loads(text, parse_constant=refuse)
    assert column(p, "inf").mean == 1.5 and column(p, "inf").max == 2.0
    assert column(p, "nan").mean is None and column(p, "empty").mean is None


def test_booleans_have_a_true_fraction_and_counts(tmp_path: Path) -> None:
    p = run(write(tmp_path, {"b": pa.array([True, True, True, False, None])}))
    b = column(p, "b")
    assert b.mean == 0.75 and b.distinct == 2
    assert [(v.value, v.count) for v in b.top_values] == [("true", 3), ("false", 1)]


def test_top_values_and_text_length(tmp_path: Path) -> None:
    words = ["a"] * 5 + ["bb"] * 3 + ["ccc"] * 2 + [f"w{i}" for i in range(20)]
    p = run(write(tmp_path, {"w": words}))
    w = column(p, "w")
    assert w.kind is ColumnKind.text
    assert [(v.value, v.count) for v in w.top_values[:3]] == [("a", 5), ("bb", 3), ("ccc", 2)]
    assert len(w.top_values) == 10
    assert w.mean_length == pytest.approx(np.mean([len(s) for s in words]))


def test_timestamps_give_iso_bounds(tmp_path: Path) -> None:
    stamps = [dt.datetime(2024, 5, 1, 12, 30), None, dt.datetime(2023, 1, 2, 3, 4, 5)]
    p = run(write(tmp_path, {"t": pa.array(stamps), "d": pa.array([dt.date(2020, 2, 29)] * 3)}))
    assert (column(p, "t").min, column(p, "t").max) == (
        "2023-01-02T03:04:05",
        "2024-05-01T12:30:00",
    )
    assert column(p, "d").min == "2020-02-29"


def test_class_balance_for_categorical_and_small_integer_targets(tmp_path: Path) -> None:
    n = 300
    path = write(
        tmp_path,
        {
            "species": [["setosa", "virginica", "versicolor", "setosa"][i % 4] for i in range(n)],
            "digit": [i % 3 for i in range(n)],
            "price": [float(i) for i in range(n)],
            "id": list(range(n)),
        },
    )
    cols = infer_schema(path)
    assert guess_target(cols, path) == "species"
    p = profile(path, cols, "species", target_guessed=True)
    assert p.target == "species" and p.target_guessed
    assert p.class_balance is not None
    assert [(c.value, c.count) for c in p.class_balance] == [
        ("setosa", 150),
        ("virginica", 75),
        ("versicolor", 75),
    ]
    assert profile(path, cols, "digit", target_guessed=False).class_balance is not None
    assert profile(path, cols, "price", target_guessed=False).class_balance is None
    assert profile(path, cols, "id", target_guessed=False).class_balance is None  # 300 values
    assert profile(path, cols, None, target_guessed=False).class_balance is None


def test_target_guess_is_conservative(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "Outcome": [0, 1] * 10,
            "category": [f"free text {i}" for i in range(20)],  # text: not a target
            "x": list(range(20)),
        },
    )
    assert guess_target(infer_schema(path), path) == "Outcome"
    nothing = write(tmp_path, {"x": [1, 2], "y_pred": [0, 1], "label": ["a", "a"]})
    assert guess_target(infer_schema(nothing), nothing) is None  # constant label: no target


def test_unknown_target_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, {"age": [1, 2], "label": ["a", "b"]})
    with pytest.raises(DataError, match="no column 'lable'; columns are: age, label"):
        profile(path, infer_schema(path), "lable", target_guessed=False)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        infer_schema(bad)
    with pytest.raises(DataError, match="no data file"):
        infer_schema(tmp_path / "missing.parquet")


def test_a_wide_table_opens_its_file_a_few_times_not_once_per_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each open parses a footer that grows with the columns: one per column made a 5,000-column
    # push take minutes. Opens are counted, not timed.
    from lepton.data import pii

    rng = np.random.default_rng(0)
    table = {f"x{i}": rng.normal(size=30) for i in range(300)}
    table |= {f"t{i}": rng.choice(["a", "b", "c@example.com"], 30) for i in range(20)}
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table(table), path)
    opened: list[Path] = []

    class Counted(pq.ParquetFile):
        def __init__(self, source: Any, *args: Any, **kwargs: Any) -> None:
            opened.append(source)
            super().__init__(source, *args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", Counted)
    columns = infer_schema(path)
    stats = profile(path, columns, None, target_guessed=False)
    report = pii.scan(path, columns)

    assert len(columns) == len(stats.column_profiles) == 320
    assert {f.column for f in report.findings} == {f"t{i}" for i in range(20)}
    assert len(opened) <= 3 * 5  # per pass: the footer once, then once per thread (up to 4)
