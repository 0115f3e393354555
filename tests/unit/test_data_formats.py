"""Dataset readers: each format round-trips a small table, and each kind of bad input is refused
with a `DataError` that names the file and the line or entry at fault.

Every input is generated in ``tmp_path``; nothing is committed as a binary fixture.
"""

from __future__ import annotations

import gzip
import io
import json
import stat
import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lepton.data.formats import (
    DEFAULT_BLOCK_SIZE,
    FORMAT_NAMES,
    Limits,
    detect_format,
    read_batches,
)
from lepton.errors import DataError

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


# --- helpers ---------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def read(path: Path, fmt: str, source: str, block_size: int = DEFAULT_BLOCK_SIZE) -> pa.Table:
    batches = list(read_batches(path, fmt, source, block_size=block_size))
    assert batches, "a readable file yields at least one batch"
    schema = batches[0].schema
    assert all(b.schema.equals(schema) for b in batches)
    return pa.Table.from_batches(batches)


def refused(
    path: Path,
    fmt: str,
    source: str,
    *needles: str,
    limits: Limits = Limits(),
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> DataError:
    """Assert reading fails with a DataError naming ``source`` and each of ``needles``."""
    with pytest.raises(DataError) as caught:
        list(read_batches(path, fmt, source, limits, block_size=block_size))
    error = caught.value
    assert source in error.message
    for needle in needles:
        assert needle in error.message, error.message
    assert error.fix, "every refusal says how to fix it"
    return error


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def make_zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(12, 5, 4), dtype=np.uint8)
LABELS = np.arange(12) % 3


def test_public_api_is_pinned() -> None:
    import lepton.data.formats as formats

    assert sorted(formats.__all__) == [
        "DEFAULT_BLOCK_SIZE",
        "FORMAT_NAMES",
        "Limits",
        "detect_format",
        "read_batches",
    ]


# --- round trips -----------------------------------------------------------------------------


def test_csv_round_trip_infers_types_and_nulls(tmp_path: Path) -> None:
    path = write(
        tmp_path, "up", "age,income,name,member\n31,1.5,Ann,true\n,2.25,,false\n40,3,Bo,\n"
    )
    table = read(path, "csv", "people.csv")
    assert table.schema.names == ["age", "income", "name", "member"]
    assert table.schema.types == [pa.int64(), pa.float64(), pa.string(), pa.bool_()]
    assert table.to_pydict() == {
        "age": [31, None, 40],
        "income": [1.5, 2.25, 3.0],
        "name": ["Ann", None, "Bo"],
        "member": [True, False, None],
    }


def test_csv_without_header_keeps_every_row(tmp_path: Path) -> None:
    path = write(tmp_path, "up", "5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,2.9,virginica\n")
    table = read(path, "csv", "iris.data.csv")
    assert table.schema.names == ["column_0", "column_1", "column_2"]
    assert table.num_rows == 3
    assert table["column_2"].to_pylist() == ["setosa", "setosa", "virginica"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("country,2019,2020\nFrance,1.2,1.3\nItaly,2.0,2.5\n", ["country", "2019", "2020"]),
        ("0,1,2\n0.5,0.1,0.3\n0.2,0.4,0.6\n", ["0", "1", "2"]),
        ("id,label\n1,cat\n2,dog\n", ["id", "label"]),
    ],
)
def test_csv_header_with_numeric_names_is_kept(tmp_path: Path, text: str, names: list[str]) -> None:
    table = read(write(tmp_path, "up", text), "csv", "t.csv")
    assert table.schema.names == names
    assert table.num_rows == 2


def test_csv_from_excel_with_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "up", "\ufeffname,score\r\nAnn,1\r\nBo,2\r\n".encode())
    assert read(path, "csv", "excel.csv").to_pydict() == {"name": ["Ann", "Bo"], "score": [1, 2]}


def test_csv_blank_header_names_are_filled_in(tmp_path: Path) -> None:
    path = write(tmp_path, "up", ",a,b\n0,x,1\n1,y,2\n")
    assert read(path, "csv", "pandas.csv").schema.names == ["column_0", "a", "b"]


def test_csv_semicolons_are_sniffed(tmp_path: Path) -> None:
    path = write(tmp_path, "up", "a;b\n1;x\n2;y\n")
    assert read(path, "csv", "eu.csv").to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_csv_types_settle_on_values_past_the_first_block(tmp_path: Path) -> None:
    # 'sparse' is empty for the first ~5,000 rows, 'n' turns fractional and 'code' turns to
    # text near the end: pyarrow alone would type them from the first block and fail later.
    rows = ["id,sparse,n,code"]
    rows += [f"{i},,{i},{i}" for i in range(5000)]
    rows += ["5000,7,2.5,A17"]
    path = write(tmp_path, "up", "\n".join(rows) + "\n")
    table = read(path, "csv", "late.csv", block_size=16 * 1024)
    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == {
        "id": pa.int64(),
        "sparse": pa.int64(),
        "n": pa.float64(),
        "code": pa.string(),
    }
    assert table.num_rows == 5001
    assert table["sparse"].to_pylist()[-1] == 7
    assert table["code"].to_pylist()[-1] == "A17"


def test_csv_streams_in_several_batches(tmp_path: Path) -> None:
    lines = ["id,value,text"] + [f"{i},{i * 0.5},row number {i}" for i in range(100_000)]
    path = write(tmp_path, "up", "\n".join(lines) + "\n")
    assert path.stat().st_size > 2 * 1024 * 1024
    batches = list(read_batches(path, "csv", "big.csv", block_size=256 * 1024))
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 100_000


def test_tsv_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, "up", "word\tcount\nhello, world\t3\nbye\t4\n")
    table = read(path, "tsv", "words.tsv")
    assert table.to_pydict() == {"word": ["hello, world", "bye"], "count": [3, 4]}


def test_parquet_round_trip_keeps_stored_types(tmp_path: Path) -> None:
    source = pa.table(
        {
            "x": pa.array(range(1000), pa.int32()),
            "y": pa.array([i / 3 for i in range(1000)], pa.float32()),
            "label": pa.array(["a", "b"] * 500).dictionary_encode(),
        }
    )
    pq.write_table(source, tmp_path / "up", row_group_size=300)
    table = read(tmp_path / "up", "parquet", "t.parquet")
    assert table.schema.equals(source.schema)
    assert table.equals(source)


def test_jsonl_round_trip_flattens_nested_objects(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "user": {"name": "Ann", "geo": {"lat": 1.5}}, "ok": True},
        {"id": 2, "user": {"name": "Bo"}, "ok": False, "note": "late field"},
        {},
    ]
    path = write(tmp_path, "up", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    table = read(path, "jsonl", "events.jsonl")
    assert table.to_pydict() == {
        "id": [1, 2, None],
        "ok": [True, False, None],
        "user.name": ["Ann", "Bo", None],
        "user.geo.lat": [1.5, None, None],
        "note": [None, "late field", None],
    }


def test_jsonl_types_merge_across_chunks(tmp_path: Path) -> None:
    lines = [json.dumps({"n": i, "empty": None}) for i in range(3000)]
    lines += [json.dumps({"n": 0.5, "extra": "x"})]
    path = write(tmp_path, "up", "\n".join(lines) + "\n")
    table = read(path, "jsonl", "n.jsonl", block_size=4096)
    assert table.schema.field("n").type == pa.float64()
    assert table.schema.field("empty").type == pa.string()
    assert table["extra"].to_pylist()[-2:] == [None, "x"]
    assert table.num_rows == 3001


def test_npz_round_trip(tmp_path: Path) -> None:
    features = RNG.normal(size=(12, 3)).astype(np.float32)
    np.savez_compressed(tmp_path / "up.npz", x=IMAGES, y=LABELS, f=features)
    table = read(tmp_path / "up.npz", "npz", "digits.npz")
    assert table.schema.names == ["image", "y", "f_0", "f_1", "f_2"]
    assert table.schema.field("image").type == pa.binary()
    assert table.schema.field("y").type == pa.int64()
    assert table.schema.field("f_1").type == pa.float32()
    assert table["y"].to_pylist() == LABELS.tolist()
    assert np.array_equal(table["f_2"].to_numpy(), features[:, 2])
    decoded = np.stack([pixels_of(b) for b in table["image"].to_pylist()])
    assert np.array_equal(decoded, IMAGES)


@pytest.mark.parametrize("block_size", [16 * 1024, DEFAULT_BLOCK_SIZE])
def test_npz_streams_rows_in_batches(tmp_path: Path, block_size: int) -> None:
    x = np.arange(300_000, dtype=np.int64)  # 2.4 MB: reads span several 1 MiB zip chunks
    np.savez_compressed(tmp_path / "up.npz", x=x, t=x * 2.0)
    batches = list(read_batches(tmp_path / "up.npz", "npz", "a.npz", block_size=block_size))
    assert len(batches) > 1
    table = pa.Table.from_batches(batches)
    assert np.array_equal(table["x"].to_numpy(), x)
    assert np.array_equal(table["t"].to_numpy(), x * 2.0)


def test_npz_rgb_images_and_fortran_order(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    features = np.asfortranarray(RNG.normal(size=(3, 2)))
    np.savez(tmp_path / "up.npz", pics=rgb, feats=features)
    table = read(tmp_path / "up.npz", "npz", "rgb.npz")
    assert np.array_equal(pixels_of(table["image"][1].as_py()), rgb[1])
    assert np.allclose(table["feats_1"].to_numpy(), features[:, 1])


def test_idx_single_gzip_file(tmp_path: Path) -> None:
    path = write(tmp_path, "up", gzip.compress(idx_images(IMAGES)))
    table = read(path, "idx", "train-images-idx3-ubyte.gz")
    assert table.schema.names == ["image"]
    assert np.array_equal(np.stack([pixels_of(b) for b in table["image"].to_pylist()]), IMAGES)


def test_idx_zip_of_images_and_labels(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "up",
        {
            "t-images-idx3-ubyte": idx_images(IMAGES),
            "t-labels-idx1-ubyte.gz": gzip.compress(idx_labels(LABELS)),
        },
    )
    table = read(path, "idx", "mnist.zip")
    assert table.schema.names == ["image", "label"]
    assert table.schema.field("label").type == pa.int64()
    assert table["label"].to_pylist() == LABELS.tolist()
    assert np.array_equal(pixels_of(table["image"][7].as_py()), IMAGES[7])


def image_folder(tmp_path: Path, entries: dict[str, bytes] | None = None) -> Path:
    pics = {
        "pets/dogs/b.png": png(IMAGES[0]),
        "pets/cats/2.png": png(IMAGES[1]),
        "pets/cats/1.PNG": png(IMAGES[2]),
        "pets/cats/.DS_Store": b"\0" * 6000,
        "__MACOSX/pets/cats/._1.PNG": b"junk",
        "pets/README.txt": b"not an image",
    }
    return make_zip(tmp_path / "up", {**pics, **(entries or {})})


def test_image_folder_round_trip(tmp_path: Path) -> None:
    table = read(image_folder(tmp_path), "image-folder", "pets.zip")
    assert table.schema.names == ["image", "label", "path"]
    assert table.schema.types == [pa.binary(), pa.string(), pa.string()]
    assert table["path"].to_pylist() == ["pets/cats/1.PNG", "pets/cats/2.png", "pets/dogs/b.png"]
    assert table["label"].to_pylist() == ["cats", "cats", "dogs"]
    assert table["image"][2].as_py() == png(IMAGES[0])  # the original bytes, not re-encoded


def test_image_folder_without_wrapper_folder(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "up", {"a/1.png": png(IMAGES[0]), "b/1.png": png(IMAGES[1])})
    assert read(path, "image-folder", "ab.zip")["label"].to_pylist() == ["a", "b"]


@pytest.mark.skipif(
    not (MNIST / "t10k-images-idx3-ubyte.gz").exists(),
    reason=f"MNIST test set not found under {MNIST}; see shared/data/mnist/README.md",
)
def test_idx_reads_the_real_mnist_test_set(tmp_path: Path) -> None:
    path = tmp_path / "mnist.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.write(MNIST / "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
        archive.write(MNIST / "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert detect_format(path, "mnist.zip") == "idx"
    batches = list(read_batches(path, "idx", "mnist.zip"))
    assert len(batches) > 1
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 10_000
    assert pixels_of(table["image"][0].as_py()).shape == (28, 28)
    counts = Counter(table["label"].to_pylist())
    assert sorted(counts) == list(range(10))
    assert all(850 <= n <= 1150 for n in counts.values()), counts


# --- detect_format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("a.tsv", "tsv"),
        ("a.tab", "tsv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.npz", "npz"),
        ("train-images-idx3-ubyte", "idx"),
    ],
)
def test_detect_format_by_extension(tmp_path: Path, name: str, fmt: str) -> None:
    assert detect_format(write(tmp_path, "up", "x,y\n1,2\n"), name) == fmt


def test_detect_format_by_magic_and_archive_contents(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "p")
    np.savez(tmp_path / "n.npz", x=np.arange(3))
    folder = image_folder(tmp_path)
    idx_zip = make_zip(tmp_path / "i", {"t-labels-idx1-ubyte": idx_labels(LABELS)})
    gz = write(tmp_path, "g", gzip.compress(idx_images(IMAGES)))
    raw = write(tmp_path, "r", idx_labels(LABELS))
    # Misleading or missing extensions: the bytes decide.
    assert detect_format(tmp_path / "p", "data.csv") == "parquet"
    assert detect_format(tmp_path / "n.npz", "arrays.zip") == "npz"
    assert detect_format(folder, "pets.csv") == "image-folder"
    assert detect_format(folder, "pets.zip") == "image-folder"
    assert detect_format(idx_zip, "mnist.zip") == "idx"
    assert detect_format(gz, "images.gz") == "idx"
    assert detect_format(gz, "images.bin") == "idx"
    assert detect_format(raw, "labels") == "idx"
    assert set(FORMAT_NAMES) == {"csv", "tsv", "parquet", "jsonl", "npz", "idx", "image-folder"}


def test_detect_format_refuses_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        detect_format(write(tmp_path, "up", "hello"), "notes.txt")
    assert "notes.txt" in caught.value.message
    assert all(fmt in caught.value.message for fmt in FORMAT_NAMES)
    with pytest.raises(DataError, match=r"data\.csv\.gz.*gzip"):
        detect_format(write(tmp_path, "gz", gzip.compress(b"a,b\n1,2\n")), "data.csv.gz")


# --- bad input: every format -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_empty_file_is_refused(tmp_path: Path, fmt: str) -> None:
    refused(write(tmp_path, "up", b""), fmt, "empty.bin", "empty")


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    refused(write(tmp_path, "up", "a,b\n"), "csv", "h.csv", "no rows")


# --- bad input: CSV and TSV ------------------------------------------------------------------


@pytest.mark.parametrize("first_line", ["", ",,", "  "])
def test_csv_header_without_columns(tmp_path: Path, first_line: str) -> None:
    path = write(tmp_path, "up", f"{first_line}\n1,2,3\n")
    refused(path, "csv", "blank.csv", "line 1", "no column names")


def test_csv_duplicate_column_names(tmp_path: Path) -> None:
    path = write(tmp_path, "up", "id,x,id,y,x\n1,2,3,4,5\n")
    refused(path, "csv", "dup.csv", "line 1", "'id'", "'x'")


def test_csv_ragged_row_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "up", 'a,b\n1,x\n2,"multi\nline"\n3,y,extra\n')
    refused(path, "csv", "ragged.csv", "line 5", "3 fields", "header has 2")


def test_csv_ragged_row_deep_in_the_file(tmp_path: Path) -> None:
    rows = ["a,b"] + [f"{i},{i}" for i in range(20_000)] + ["1"] + ["2,2"] * 10
    path = write(tmp_path, "up", "\n".join(rows) + "\n")
    refused(path, "csv", "deep.csv", "line 20002", "1 field,", block_size=32 * 1024)


def test_tsv_ragged_row(tmp_path: Path) -> None:
    error = refused(write(tmp_path, "up", "a\tb\n1\t2\t3\n"), "tsv", "t.tsv", "line 2", "3 fields")
    assert "a tab" in error.fix


def test_csv_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "up", b"name,city\nAnn,Paris\nBo,Z\xfcrich\n")
    error = refused(path, "csv", "latin1.csv", "line 3", "0xfc", "UTF-8")
    assert "UTF-8" in error.fix


def test_csv_invalid_utf8_deep_in_the_file(tmp_path: Path) -> None:
    rows = [b"name,n"] + [b"row%d,%d" % (i, i) for i in range(20_000)] + [b"caf\xe9,1"]
    path = write(tmp_path, "up", b"\n".join(rows) + b"\n")
    refused(path, "csv", "deep.csv", "line 20002", "UTF-8", block_size=32 * 1024)


def test_csv_in_utf16_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "up", "a,b\n1,2\n".encode("utf-16"))
    refused(path, "csv", "u16.csv", "line 1", "UTF-8")


def test_csv_invalid_utf8_in_header(tmp_path: Path) -> None:
    refused(write(tmp_path, "up", b"na\xefve,b\n1,2\n"), "csv", "h.csv", "line 1", "UTF-8")


# --- bad input: Parquet ----------------------------------------------------------------------


def test_truncated_parquet(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": list(range(1000))}), tmp_path / "whole")
    data = (tmp_path / "whole").read_bytes()
    refused(write(tmp_path, "up", data[: len(data) // 2]), "parquet", "cut.parquet", "Parquet")


def test_corrupt_parquet_row_group(tmp_path: Path) -> None:
    table = pa.table({"s": [f"value {i}" for i in range(50_000)]})
    pq.write_table(table, tmp_path / "whole", row_group_size=10_000, compression="snappy")
    data = bytearray((tmp_path / "whole").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = b"\xff" * 2000
    refused(write(tmp_path, "up", bytes(data)), "parquet", "bad.parquet", "row group")


def test_parquet_duplicate_column_names(tmp_path: Path) -> None:
    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]), tmp_path / "up")
    refused(tmp_path / "up", "parquet", "dup.parquet", "duplicate", "'a'")


# --- bad input: JSON Lines -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "needles"),
    [
        (['{"a": 1}', '{"a": 2', '{"a": 3}'], ["line 2", "not valid JSON"]),
        (['{"a": 1}', "[1, 2]"], ["line 2", "not a JSON object"]),
        (['{"a": 1}', '{"a": 2, "tags": ["x", "y"]}'], ["line 2", "'tags'", "list"]),
        (['{"a": 1}', '{"a": "one"}'], ["line 2", "'a'", "a string", "a number"]),
        (['{"a": 1}', '{"a": {"b": 1}}'], ["line 2", "'a'", "an object"]),
        (['{"a": 1, "a": 2}'], ["line 1", "twice"]),
    ],
)
def test_jsonl_bad_lines(tmp_path: Path, lines: list[str], needles: list[str]) -> None:
    path = write(tmp_path, "up", "\n".join(lines) + "\n")
    refused(path, "jsonl", "bad.jsonl", *needles)


def test_jsonl_type_change_across_chunks(tmp_path: Path) -> None:
    lines = [json.dumps({"a": i}) for i in range(2000)] + [json.dumps({"a": "text"})]
    path = write(tmp_path, "up", "\n".join(lines) + "\n")
    refused(path, "jsonl", "t.jsonl", "line 2001", "'a'", "a string", block_size=4096)


def test_jsonl_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "up", b'{"a": "x"}\n{"a": "caf\xe9"}\n')
    refused(path, "jsonl", "l.jsonl", "line 2", "UTF-8")


# --- bad input: npz --------------------------------------------------------------------------


def test_npz_object_array_is_never_unpickled(tmp_path: Path) -> None:
    np.savez(tmp_path / "up.npz", x=np.arange(2), o=np.array([{"a": 1}, None], dtype=object))
    refused(tmp_path / "up.npz", "npz", "evil.npz", "'o.npy'", "objects")


def test_npz_mismatched_rows_name_the_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "up.npz", x=np.zeros((10, 2)), y=np.zeros(9))
    refused(tmp_path / "up.npz", "npz", "m.npz", "'x' has 10", "'y' has 9")


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((3, 4, 4), dtype=np.float32), "uint8"),
        (np.zeros((3, 4, 4, 2), dtype=np.uint8), "C is 1, 3 or 4"),
        (np.float64(1.0), "scalar"),
        (np.zeros((2, 2), dtype=np.complex64), "complex64"),
    ],
)
def test_npz_arrays_without_a_column_shape(tmp_path: Path, array: np.ndarray, needle: str) -> None:
    np.savez(tmp_path / "up.npz", a=array)
    refused(tmp_path / "up.npz", "npz", "a.npz", "'a.npy'", needle)


# --- bad input: IDX --------------------------------------------------------------------------


def test_truncated_idx_says_expected_and_actual_bytes(tmp_path: Path) -> None:
    data = idx_images(IMAGES)
    path = write(tmp_path, "up", data[:-7])
    refused(path, "idx", "i-ubyte", "truncated", f"{len(data):,} bytes", f"{len(data) - 7:,}")


def test_short_idx_inside_a_whole_gzip(tmp_path: Path) -> None:
    path = write(tmp_path, "up", gzip.compress(idx_images(IMAGES)[:-7]))
    refused(path, "idx", "i-ubyte.gz", "truncated", "expected 240 more bytes", "got 233")


def test_cut_gzip_idx(tmp_path: Path) -> None:
    data = gzip.compress(idx_images(RNG.integers(0, 256, size=(2000, 28, 28), dtype=np.uint8)))
    path = write(tmp_path, "up", data[: len(data) // 2])
    refused(path, "idx", "i-ubyte.gz", "gzip")


def test_idx_bad_magic(tmp_path: Path) -> None:
    path = write(tmp_path, "up", struct.pack(">II", 0x0D02, 1) + b"\0" * 8)
    refused(path, "idx", "x-ubyte", "0x00000803")


def test_idx_counts_must_match(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "up",
        {"images-idx3-ubyte": idx_images(IMAGES), "labels-idx1-ubyte": idx_labels(LABELS[:-1])},
    )
    refused(path, "idx", "m.zip", "'images-idx3-ubyte'", "12 images", "11 labels")


# --- bad input: archives and image folders ---------------------------------------------------


def test_corrupt_zip(tmp_path: Path) -> None:
    data = image_folder(tmp_path).read_bytes()
    path = write(tmp_path, "cut", data[: len(data) // 2])
    refused(path, "image-folder", "pets.zip", "not a readable zip")


def test_corrupt_zip_entry(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "up", {"a/1.png": png(IMAGES[0]), "b/1.png": b"x" * 5000})
    data = bytearray(path.read_bytes())
    start = data.index(b"b/1.png") + len("b/1.png")  # compressed data follows the local name
    data[start + 5 : start + 15] = b"\x00" * 10
    refused(write(tmp_path, "bad", bytes(data)), "image-folder", "z.zip", "'b/1.png'")


def test_undecodable_image_names_its_entry(tmp_path: Path) -> None:
    path = image_folder(tmp_path, {"pets/dogs/broken.jpg": png(IMAGES[3])[:40]})
    refused(path, "image-folder", "pets.zip", "'pets/dogs/broken.jpg'", "not a readable image")


def test_image_over_the_pixel_limit(tmp_path: Path) -> None:
    path = image_folder(tmp_path)
    limits = Limits(max_image_pixels=10)
    refused(path, "image-folder", "pets.zip", "'pets/cats/1.PNG'", "pixels", limits=limits)
    # An entry too large to be an image within the limit is refused before it is read.
    padded = png(np.zeros((4, 4), np.uint8)) + b"\0" * (2 * 1024 * 1024)
    path = make_zip(tmp_path / "big", {"a/1.png": padded}, zipfile.ZIP_STORED)
    limits = Limits(max_image_pixels=1)
    refused(path, "image-folder", "big.zip", "'a/1.png'", "bytes", limits=limits)


def test_class_folder_without_images(tmp_path: Path) -> None:
    path = image_folder(tmp_path, {"pets/birds/": b"", "pets/fish/notes.txt": b"x"})
    refused(path, "image-folder", "pets.zip", "'pets/birds/'", "no images")


def test_image_outside_any_class_folder(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "up", {"a/1.png": png(IMAGES[0]), "loose.png": png(IMAGES[1])})
    refused(path, "image-folder", "l.zip", "'loose.png'", "class folder")


def test_zip_without_images(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "up", {"a/notes.txt": b"x"})
    refused(path, "image-folder", "n.zip", "no images")


@pytest.mark.parametrize("name", ["../evil/1.png", "a/../../1.png", "/etc/1.png", "C:/x/1.png"])
def test_entries_escaping_the_folder(tmp_path: Path, name: str) -> None:
    path = tmp_path / "up"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/1.png", png(IMAGES[0]))
        archive.writestr(zipfile.ZipInfo(name), png(IMAGES[1]))
    refused(path, "image-folder", "escape.zip", repr(name), "outside")


def test_symlink_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "up"
    link = zipfile.ZipInfo("a/2.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/1.png", png(IMAGES[0]))
        archive.writestr(link, "/etc/passwd")
    refused(path, "image-folder", "links.zip", "'a/2.png'", "symbolic link")


def test_zip_bomb_by_ratio(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "up", {"a/1.png": png(IMAGES[0]), "a/bomb.png": b"\0" * 4_000_000})
    refused(path, "image-folder", "bomb.zip", "'a/bomb.png'", "-fold")


def test_zip_bomb_by_declared_size(tmp_path: Path) -> None:
    path = image_folder(tmp_path)
    limits = Limits(max_uncompressed_bytes=1000)
    refused(path, "image-folder", "big.zip", "expands to", limits=limits)


def test_zip_with_too_many_entries(tmp_path: Path) -> None:
    path = image_folder(tmp_path)
    refused(path, "image-folder", "many.zip", "entries", limits=Limits(max_entries=3))
    with pytest.raises(DataError, match="entries"):
        detect_format(path, "many.zip", Limits(max_entries=3))


def test_zip_entry_larger_than_declared(tmp_path: Path) -> None:
    # The central directory claims 10 bytes; the real data is longer. Reading stops at the
    # declared size and the checksum no longer matches: refused, never read on.
    real = png(IMAGES[0])
    path = make_zip(tmp_path / "up", {"a/1.png": real}, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature)
        data[at + offset : at + offset + 4] = struct.pack("<I", 10)
    refused(write(tmp_path, "lie", bytes(data)), "image-folder", "lie.zip", "'a/1.png'")


def test_unknown_format_name(tmp_path: Path) -> None:
    refused(write(tmp_path, "up", "a\n1\n"), "xlsx", "a.xlsx", "unknown format")
