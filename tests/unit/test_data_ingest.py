"""Ingest parses CSV once, straight into Parquet: a column whose type changes deep in the file,
and an error deep in the file, must come out exactly as a careful two-pass read would."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lepton.data.ingest import ingest
from lepton.errors import DataError

BLOCK = 16 * 1024  # small blocks, so 6,000 rows span many of them


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("id,x,label\n" + "\n".join(rows) + "\n")
    return path


def test_a_column_that_turns_to_text_late_is_read_as_text(tmp_path: Path) -> None:
    rows = [f"{i},{i * 2},{'a' if i % 2 else 'b'}" for i in range(6000)]
    rows[5500] = "5500,not-a-number,a"
    source = _csv(tmp_path / "late.csv", rows)

    result = ingest(source, "late.csv", tmp_path, block_size=BLOCK)

    table = pq.read_table(result.table).to_pandas()
    expected = pd.read_csv(source, dtype={"x": str})
    assert len(table) == 6000 == result.analysis.rows
    assert table["x"].tolist() == expected["x"].tolist()
    assert table["id"].tolist() == list(range(6000))


def test_a_sparse_column_that_wakes_up_late_keeps_its_numbers(tmp_path: Path) -> None:
    rows = [f"{i},,a" for i in range(6000)]
    rows[5900] = "5900,3.5,b"
    source = _csv(tmp_path / "sparse.csv", rows)

    result = ingest(source, "sparse.csv", tmp_path, block_size=BLOCK)

    x = pq.read_table(result.table).column("x").to_pylist()
    assert x[5900] == 3.5
    assert sum(v is not None for v in x) == 1


def test_a_ragged_row_deep_in_the_file_names_its_line_and_leaves_no_table(tmp_path: Path) -> None:
    rows = [f"{i},{i},a" for i in range(6000)]
    rows[5000] = "5000,1,a,extra"
    source = _csv(tmp_path / "ragged.csv", rows)

    with pytest.raises(DataError) as caught:
        ingest(source, "ragged.csv", tmp_path, block_size=BLOCK)

    assert "ragged.csv, line 5002" in caught.value.message
    assert not (tmp_path / "data.parquet").exists()


def test_a_parquet_file_with_category_columns_is_profiled_like_text(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "city": pd.Categorical(["Oslo", "Rome", "Oslo", None] * 50),
            "day": pd.Categorical(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"] * 50),
            "y": [0, 1] * 100,
        }
    )
    source = tmp_path / "cats.parquet"
    frame.to_parquet(source)

    result = ingest(source, "cats.parquet", tmp_path)

    kinds = {c.name: c.kind.value for c in result.analysis.columns}
    assert kinds == {"city": "categorical", "day": "datetime", "y": "numeric"}
    city = next(p for p in result.analysis.profile.column_profiles if p.name == "city")
    assert city.nulls == 50 and city.distinct == 2
