"""Transforms: each step's effect, chains, up-front validation, streaming and atomic output."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydantic import TypeAdapter

from lepton.data import transforms
from lepton.data.dedup import SeenRows
from lepton.data.transforms import apply_transform, describe
from lepton.errors import InvalidRequest
from lepton.schemas import TransformStep

STEPS: TypeAdapter[list[TransformStep]] = TypeAdapter(list[TransformStep])


def steps(*raw: dict[str, Any]) -> list[TransformStep]:
    return STEPS.validate_python(list(raw))


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


PEOPLE = {
    "name": ["Alice Smith", "Bob Jones", None, "Alice Smith", "Carol King"],
    "email": ["alice@example.com", "bob@mail.org", "x@y.io", "alice@example.com", None],
    "phone": ["+1 555-123-4567", None, "555 987 6543", "+1 555-123-4567", "020 7946 0958"],
    "age": ["34", "51", "7", "34", "2.0"],
    "score": [1.5, 2.0, float("nan"), 1.5, 3.0],
}


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.parquet"
    pq.write_table(pa.table(PEOPLE), path)
    return path


def run(src: Path, *raw: dict[str, Any], batch_size: int = 65_536) -> dict[str, list[Any]]:
    dst = src.with_name("out.parquet")
    apply_transform(src, steps(*raw), dst, batch_size=batch_size)
    result: dict[str, list[Any]] = pq.read_table(dst).to_pydict()
    return result


def test_select_keeps_columns_in_the_given_order(people: Path) -> None:
    out = run(people, {"op": "select", "columns": ["email", "name"]})
    assert list(out) == ["email", "name"]
    assert out["email"] == PEOPLE["email"]


def test_drop_rename_and_chain_apply_in_order(people: Path) -> None:
    out = run(
        people,
        {"op": "drop", "columns": ["phone", "score"]},
        {"op": "rename", "mapping": {"name": "full_name", "age": "years"}},
        {"op": "cast", "types": {"years": "int"}},
        {"op": "select", "columns": ["years", "full_name"]},
    )
    assert out == {"years": [34, 51, 7, 34, 2], "full_name": PEOPLE["name"]}


def test_rename_can_swap_names(people: Path) -> None:
    out = run(people, {"op": "rename", "mapping": {"name": "email", "email": "name"}})
    assert out["name"] == PEOPLE["email"] and out["email"] == PEOPLE["name"]


@pytest.mark.parametrize(
    ("values", "to", "expected", "arrow_type"),
    [
        (["1", " 2 ", "3.0", None], "int", [1, 2, 3, None], pa.int64()),
        ([1.0, 2.0, None, float("nan")], "int", [1, 2, None, None], pa.int64()),
        ([1.0, float("nan")], "string", ["1", None], pa.string()),
        (["1.5", "2", None], "float", [1.5, 2.0, None], pa.float64()),
        ([1, 2, None], "string", ["1", "2", None], pa.string()),
        (
            ["Yes", "no", "TRUE", "0", "1", None],
            "bool",
            [True, False, True, False, True, None],
            pa.bool_(),
        ),
        ([0, 1, None], "bool", [False, True, None], pa.bool_()),
        (
            ["2024-01-02", "2024-01-02T03:04:05", "2024-01-02 03:04:05+02:00", None],
            "datetime",
            [
                datetime(2024, 1, 2),
                datetime(2024, 1, 2, 3, 4, 5),
                datetime(2024, 1, 2, 1, 4, 5),
                None,
            ],
            pa.timestamp("us"),
        ),
        (
            ["a", "b", "a", None],
            "category",
            ["a", "b", "a", None],
            pa.dictionary(pa.int32(), pa.string()),
        ),
    ],
)
def test_cast(
    tmp_path: Path, values: list[Any], to: str, expected: list[Any], arrow_type: Any
) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"v": values}), src)
    dst = tmp_path / "out.parquet"
    apply_transform(src, steps({"op": "cast", "types": {"v": to}}), dst)
    table = pq.read_table(dst)
    assert table.schema.field("v").type == arrow_type
    assert table.column("v").to_pylist() == expected


@pytest.mark.parametrize(
    ("values", "to", "bad", "row"),
    [
        (["1", "2", "3", "x", "4"], "int", "'x'", 3),
        ([1.0, 2.5], "int", "2.5", 1),
        (["1", "maybe", "0"], "bool", "'maybe'", 1),
        ([0, 1, 2], "bool", "2", 2),
        (["2024-01-01", "01/02/2024"], "datetime", "'01/02/2024'", 1),
        (["1.5", "abc"], "float", "'abc'", 1),
    ],
)
def test_cast_error_names_column_value_and_row(
    tmp_path: Path, values: list[Any], to: str, bad: str, row: int
) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"v": values}), src)
    with pytest.raises(InvalidRequest) as caught:
        apply_transform(src, steps({"op": "cast", "types": {"v": to}}), tmp_path / "out.parquet")
    assert f"cannot cast column 'v' to {to}: value {bad} at row {row}" in caught.value.message


def test_cast_error_row_counts_source_rows_across_batches_and_filters(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"v": ["1", None, "2", None, "3", "oops"]}), src)
    with pytest.raises(InvalidRequest, match="value 'oops' at row 5"):
        run(src, {"op": "drop_nulls"}, {"op": "cast", "types": {"v": "int"}}, batch_size=2)


def test_drop_nulls_counts_nan_as_missing(people: Path) -> None:
    assert run(people, {"op": "drop_nulls", "columns": ["score"]})["age"] == [
        "34",
        "51",
        "34",
        "2.0",
    ]
    assert run(people, {"op": "drop_nulls"})["age"] == ["34"] * 2


def test_deduplicate_keeps_first_occurrences_in_order(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    rows = {"a": [1, 2, 1, 3, 2, 1, None, None], "b": ["x", "y", "x", "x", "y", "z", "", None]}
    pq.write_table(pa.table(rows), src)
    expected = {"a": [1, 2, 3, 1, None, None], "b": ["x", "y", "x", "z", "", None]}
    assert run(src, {"op": "deduplicate"}) == expected
    assert run(src, {"op": "deduplicate"}, batch_size=3) == expected


def test_deduplicate_compares_values_not_batch_types(tmp_path: Path) -> None:
    # Batch 1 holds a null, batch 2 does not: the 1s must still compare equal across them.
    src = tmp_path / "in.parquet"
    table = pa.table(
        {
            "n": pa.array([1, None, 1, 2], pa.int64()),
            "f": [0.0, float("nan"), -0.0, None],
            "tags": pa.array([[1], [2], [1], [1]], pa.list_(pa.int64())),
            "price": pa.array([Decimal("1.5"), None, Decimal("1.5"), None], pa.decimal128(5, 2)),
        }
    )
    pq.write_table(table, src)
    assert run(src, {"op": "deduplicate"}, batch_size=2)["n"] == [1, None, 2]


def test_deduplicate_after_select_compares_only_kept_columns(people: Path) -> None:
    out = run(people, {"op": "select", "columns": ["name"]}, {"op": "deduplicate"})
    assert out["name"] == ["Alice Smith", "Bob Jones", None, "Carol King"]


def test_anonymize_hash_is_consistent_hides_raw_values_and_keeps_nulls(people: Path) -> None:
    out = run(people, {"op": "anonymize", "columns": ["email", "phone"], "salt": "pepper"})
    emails = out["email"]
    assert emails[0] == emails[3] and emails[0] != emails[1] and emails[4] is None
    assert all(len(e) == 16 and int(e, 16) >= 0 for e in emails[:4])
    assert out["phone"][1] is None
    raw = people.with_name("out.parquet").read_bytes()
    for secret in ("alice@example.com", "alice", "555-123-4567"):
        assert secret.encode() not in raw
    again = run(people, {"op": "anonymize", "columns": ["email"], "salt": "pepper"})
    assert again["email"] == emails  # an explicit salt reproduces the hashes across versions
    other = run(people, {"op": "anonymize", "columns": ["email"], "salt": "salt2"})
    assert other["email"][0] != emails[0]


def test_anonymize_without_salt_is_random_per_call_but_consistent_within(people: Path) -> None:
    step = {"op": "anonymize", "columns": ["email", "name"]}
    first, second = run(people, step), run(people, step)
    assert first["email"][0] == first["email"][3]
    assert first["email"][0] != second["email"][0]


def test_anonymize_mask_keeps_a_hint(people: Path) -> None:
    out = run(people, {"op": "anonymize", "columns": ["email", "phone", "name"], "method": "mask"})
    assert out["email"][:2] == ["a****@*******.com", "b**@****.org"]
    assert out["phone"][0] == "+* ***-***-4567" and out["phone"][1] is None
    assert out["name"][0] == "A**********"


def test_anonymize_drop_removes_the_column(people: Path) -> None:
    out = run(people, {"op": "anonymize", "columns": ["email"], "method": "drop"})
    assert list(out) == ["name", "phone", "age", "score"]


def test_resize_images_to_requested_size_keeping_mode(tmp_path: Path) -> None:
    src = tmp_path / "images.parquet"
    images = [png(40, 30), png(8, 8, "L"), None, png(5, 9, "RGBA")]
    pq.write_table(pa.table({"image": images, "label": [0, 1, 2, 3]}), src)
    out = run(src, {"op": "resize_images", "width": 28, "height": 14})
    decoded = [Image.open(io.BytesIO(b)) if b else None for b in out["image"]]
    assert [d.size if d else None for d in decoded] == [(28, 14), (28, 14), None, (28, 14)]
    assert [d.mode if d else None for d in decoded] == ["RGB", "L", None, "RGBA"]
    assert [d.format if d else None for d in decoded] == ["PNG", "PNG", None, "PNG"]


def test_unreadable_image_names_the_row(tmp_path: Path) -> None:
    src = tmp_path / "images.parquet"
    pq.write_table(pa.table({"image": [png(4, 4), b"not an image"]}), src)
    with pytest.raises(InvalidRequest, match=r"at row 1 .* not an image"):
        run(src, {"op": "resize_images", "width": 2, "height": 2})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"op": "select", "columns": ["emial"]}, "step 1 (select) names column 'emial'"),
        ({"op": "cast", "types": {"agee": "int"}}, "names column 'agee'"),
        ({"op": "drop_nulls", "columns": ["scor"]}, "names column 'scor'"),
        ({"op": "anonymize", "columns": ["phon"]}, "names column 'phon'"),
    ],
)
def test_unknown_column_lists_columns_and_closest_match(
    people: Path, raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(people, raw)
    assert message in caught.value.message
    assert "columns are: name, email, phone, age, score" in caught.value.message
    assert "the closest is '" in caught.value.message


def test_validation_walks_the_steps_over_the_schema(people: Path) -> None:
    rename = {"op": "rename", "mapping": {"age": "years"}}
    with pytest.raises(InvalidRequest) as caught:
        run(people, rename, {"op": "cast", "types": {"age": "int"}})
    assert "step 2 (cast) names column 'age'" in caught.value.message
    assert "columns are: name, email, phone, years, score" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"op": "rename", "mapping": {"name": "email"}}], "two columns the name 'email'"),
        ([{"op": "drop", "columns": ["name", "email", "phone", "age", "score"]}], "every column"),
        (
            [
                {"op": "select", "columns": ["age"]},
                {"op": "anonymize", "columns": ["age"], "method": "drop"},
            ],
            "every column",
        ),
        ([{"op": "resize_images", "width": 8, "height": 8}], "needs an 'image' column"),
        ([{"op": "select", "columns": ["age", "age"]}], "'age' more than once"),
    ],
)
def test_impossible_plans_are_refused(
    people: Path, raw: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        run(people, *raw)


def test_validation_happens_before_any_data_is_read(
    people: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("data was read before the steps were checked")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", no_reading)
    with pytest.raises(InvalidRequest):
        run(people, {"op": "cast", "types": {"age": "int"}}, {"op": "drop", "columns": ["nope"]})


def test_failed_transform_leaves_no_file_and_keeps_an_old_one(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"v": ["1", "2", "3", "4", "x"]}), src)
    with pytest.raises(InvalidRequest, match="'x' at row 4"):  # batches 1 and 2 were written
        apply_transform(src, steps({"op": "cast", "types": {"v": "int"}}), dst, batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
    dst.write_bytes(b"previous version")
    with pytest.raises(InvalidRequest):
        apply_transform(src, steps({"op": "cast", "types": {"v": "int"}}), dst, batch_size=2)
    assert dst.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_many_batches_give_the_same_result_as_one(people: Path) -> None:
    chain = (
        {"op": "drop_nulls", "columns": ["name"]},
        {"op": "deduplicate"},
        {"op": "cast", "types": {"age": "float"}},
        {"op": "anonymize", "columns": ["email"], "salt": "s"},
    )
    assert run(people, *chain, batch_size=1) == run(people, *chain)


def test_only_needed_columns_are_read(people: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["columns"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    run(
        people,
        {"op": "rename", "mapping": {"age": "years"}},
        {"op": "drop_nulls", "columns": ["score"]},
        {"op": "select", "columns": ["years"]},
    )
    assert seen == [["age", "score"]]


def test_empty_input_still_writes_the_output_schema(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"v": pa.array([], pa.string()), "w": pa.array([], pa.int64())}), src)
    dst = tmp_path / "out.parquet"
    apply_transform(
        src, steps({"op": "cast", "types": {"v": "int"}}, {"op": "drop", "columns": ["w"]}), dst
    )
    assert pq.read_table(dst).schema.field("v").type == pa.int64()


def test_describe_has_one_line_per_step() -> None:
    text = describe(
        steps(
            {"op": "select", "columns": ["a", "b"]},
            {"op": "rename", "mapping": {"a": "x"}},
            {"op": "cast", "types": {"x": "int"}},
            {"op": "drop_nulls"},
            {"op": "deduplicate"},
            {"op": "anonymize", "columns": ["email"], "salt": "s"},
            {"op": "anonymize", "columns": ["phone"], "method": "mask"},
            {"op": "resize_images", "width": 28, "height": 28},
        )
    )
    assert text.splitlines() == [
        "select a, b",
        "rename a -> x",
        "cast x to int",
        "drop rows with a missing value in any column",
        "drop duplicate rows (keep the first)",
        "anonymize email (salted sha256)",
        "anonymize phone (masked)",
        "resize images to 28x28 (lanczos, png)",
    ]
    assert transforms.HASH_HEX_CHARS == 16


def test_seen_rows_tells_apart_hashes_that_share_the_high_half() -> None:
    # A 64-bit collision needs ~4e9 rows to show up by chance, so it is built by hand here.
    seen = SeenRows()
    u64 = np.uint64
    first = seen.keep_first((np.array([5, 5, 7], dtype=u64), np.array([1, 2, 3], dtype=u64)))
    assert first.tolist() == [True, True, True]
    again = seen.keep_first((np.array([5, 5, 5, 7], dtype=u64), np.array([2, 9, 1, 4], dtype=u64)))
    assert again.tolist() == [False, True, False, True]
    third = seen.keep_first((np.array([5, 5], dtype=u64), np.array([9, 8], dtype=u64)))
    assert third.tolist() == [False, True]


def test_hashed_columns_follow_renames_and_drops_and_end_at_a_mask() -> None:
    after = transforms.hashed_columns(
        ["email"],
        steps(
            {"op": "anonymize", "columns": ["phone", "ssn"]},
            {"op": "rename", "mapping": {"email": "contact"}},
            {"op": "drop", "columns": ["ssn"]},
        ),
    )
    assert after == ["contact", "phone"]
    assert transforms.hashed_columns(
        after,
        steps(
            {"op": "anonymize", "columns": ["contact"], "method": "mask"},
            {"op": "cast", "types": {"phone": "string"}},
        ),
    ) == ["phone"]
    assert transforms.hashed_columns(["a", "b"], steps({"op": "select", "columns": ["b"]})) == ["b"]
