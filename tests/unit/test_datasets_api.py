"""Datasets as a user meets them through the SDK (and raw HTTP where the SDK cannot say it):
every kind of push, versions and dedup, exact pulls, the PII report, transforms, stored splits,
deletion and erasure, refused input that leaves nothing behind, the upload limit, the bundled
samples, and names and references."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from PIL import Image
from starlette.testclient import TestClient

from lepton import Client
from lepton.data.samples import MNIST_DIR, SAMPLES, load_sample
from lepton.errors import (
    Conflict,
    DataError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from lepton.schemas import ColumnKind, DatasetVersionDetail
from lepton.settings import Settings
from lepton.store.blobs import BlobStore

if TYPE_CHECKING:
    from conftest import Platform, Started


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kinds(version: DatasetVersionDetail) -> dict[str, ColumnKind]:
    return {c.name: c.kind for c in version.schema_}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(settings: Settings) -> list[Path]:
    """What pushes, transforms and splits left in the private work folder."""
    work = settings.home / "work"
    return sorted(work.iterdir()) if work.exists() else []


# 30 rows: enough for the schema to call a repeated string column categorical.
HEART = "age,sex,chol,label\n" + "".join(
    f"{40 + i},{'MF'[i % 2]},{200 + 3 * i},{i % 3 == 0:d}\n" for i in range(30)
)


@pytest.fixture
def client(platform: Platform) -> Client:
    return platform.client(platform.admin)


@pytest.fixture
def blobs(app: FastAPI) -> BlobStore:
    store: BlobStore = app.state.lepton.ctx.blobs
    return store


@pytest.fixture
def heart(tmp_path: Path) -> Path:
    path = tmp_path / "heart.csv"
    path.write_text(HEART)
    return path


def image_folder(root: Path) -> Path:
    """``pets/{cat,dog}/*.png``: three red 8x6 cats, three blue dogs."""
    folder = root / "pets"
    for label, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 6), colour).save(folder / label / f"{i}.png")
    return folder


# --- push: each kind of input ----------------------------------------------------------------


def test_push_csv_file_reads_rows_schema_and_the_given_target(client: Client, heart: Path) -> None:
    v = client.datasets.push(heart, name="heart", target="sex")

    assert (v.ref, v.version, v.created, v.format) == ("heart@v1", 1, True, "csv")
    assert v.rows == 30 and v.source_name == "heart.csv"
    assert kinds(v) == {
        "age": "numeric",
        "sex": "categorical",
        "chol": "numeric",
        "label": "numeric",
    }
    assert v.target == "sex" and not v.profile.target_guessed
    assert {(b.value, b.count) for b in v.profile.class_balance or []} == {("M", 15), ("F", 15)}
    frame = client.datasets.to_pandas("heart")
    pd.testing.assert_frame_equal(frame, pd.read_csv(heart), check_dtype=False)


def test_push_tsv_guesses_a_target_named_label(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "heart.tsv"
    path.write_text(HEART.replace(",", "\t"))

    v = client.datasets.push(path, name="heart-tsv")

    assert (v.format, v.rows, v.target, v.profile.target_guessed) == ("tsv", 30, "label", True)
    assert kinds(v)["sex"] == "categorical"
    X, y = client.datasets.to_numpy("heart-tsv")
    expected = pd.read_csv(path, sep="\t")
    np.testing.assert_array_equal(X, expected[["age", "chol"]].to_numpy(dtype=np.float64))
    assert y is not None and y.tolist() == expected["label"].tolist()


def test_push_parquet_file_round_trips_values_and_types(client: Client, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "n": np.arange(30, dtype=np.int64),
            "x": np.linspace(0, 1, 30),
            "ok": [i % 2 == 0 for i in range(30)],
            "colour": ["red", "green", "blue"] * 10,
        }
    )
    path = tmp_path / "paint.parquet"
    frame.to_parquet(path, index=False)

    v = client.datasets.push(path, name="paint")

    assert (v.format, v.rows, v.target) == ("parquet", 30, None)
    assert kinds(v) == {"n": "numeric", "x": "numeric", "ok": "boolean", "colour": "categorical"}
    pd.testing.assert_frame_equal(client.datasets.to_pandas("paint"), frame)


def test_push_jsonl_file(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(f'{{"id": {i}, "kind": "{"ab"[i % 2]}"}}\n' for i in range(30)))

    v = client.datasets.push(path, name="events", target="kind")

    assert (v.format, v.rows, v.target) == ("jsonl", 30, "kind")
    assert kinds(v) == {"id": "numeric", "kind": "categorical"}
    frame = client.datasets.to_pandas("events")
    assert frame["id"].tolist() == list(range(30))
    assert frame["kind"].tolist() == ["a", "b"] * 15


def test_push_dataframe_guesses_target_and_to_numpy_gives_features_back(client: Client) -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0],
            "flag": [True, False, True, False],
            "city": ["Oslo", "Lima", "Pune", "Kyiv"],
            "target": ["a", "b", "a", "b"],
        }
    )

    v = client.datasets.push(frame, name="frame")

    assert (v.ref, v.format, v.source_name) == ("frame@v1", "parquet", "frame.parquet")
    assert (v.target, v.profile.target_guessed) == ("target", True)
    assert kinds(v)["x"] == "numeric" and kinds(v)["flag"] == "boolean"
    pd.testing.assert_frame_equal(client.datasets.to_pandas("frame"), frame)
    X, y = client.datasets.to_numpy("frame")
    # Numeric and boolean features only, as float64; the text column and the target stay out.
    np.testing.assert_array_equal(X, [[1, 1], [2, 0], [3, 1], [4, 0]])
    assert X.dtype == np.float64
    assert y is not None and y.tolist() == ["a", "b", "a", "b"]


def test_push_dict_of_arrays_is_stored_as_npz_columns(client: Client) -> None:
    a, b = np.arange(5), np.arange(5) * 2.5

    v = client.datasets.push({"a": a, "b": b}, name="arrays")

    assert (v.format, v.rows, v.source_name) == ("npz", 5, "arrays.npz")
    assert kinds(v) == {"a": "numeric", "b": "numeric"}
    frame = client.datasets.to_pandas("arrays")
    np.testing.assert_array_equal(frame["a"], a)
    np.testing.assert_array_equal(frame["b"], b)


def test_push_x_y_pair_comes_back_from_to_numpy(client: Client) -> None:
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([0, 1, 0, 1])

    v = client.datasets.push((X, y), name="pair")

    assert (v.format, v.rows, v.target) == ("npz", 4, "y")
    assert [c.name for c in v.schema_] == ["X_0", "X_1", "X_2", "y"]
    X_back, y_back = client.datasets.to_numpy("pair")
    np.testing.assert_array_equal(X_back, X)
    assert y_back is not None and y_back.tolist() == y.tolist()


def test_push_image_folder_decodes_back_to_pixels_and_labels(
    client: Client, tmp_path: Path
) -> None:
    v = client.datasets.push(image_folder(tmp_path), name="pets")

    assert (v.format, v.rows, v.target) == ("image-folder", 6, "label")
    assert kinds(v)["image"] == "image" and kinds(v)["label"] == "categorical"
    assert {(b.value, b.count) for b in v.profile.class_balance or []} == {("cat", 3), ("dog", 3)}
    X, y = client.datasets.to_numpy("pets")
    assert X.shape == (6, 6, 8, 3) and X.dtype == np.uint8
    assert y is not None and sorted(y.tolist()) == ["cat"] * 3 + ["dog"] * 3
    red = X[list(y).index("cat")]
    assert red[0, 0].tolist() == [255, 0, 0]


def test_push_mnist_sample_folder_of_idx_files(client: Client) -> None:
    folder = load_sample("mnist")
    assert folder == MNIST_DIR

    v = client.datasets.push(folder, name="mnist")

    assert (v.format, v.rows, v.target) == ("idx", 10_000, "label")
    assert kinds(v)["image"] == "image"
    balance = v.profile.class_balance or []
    assert len(balance) == 10 and sum(b.count for b in balance) == 10_000
    X, y = client.datasets.to_numpy("mnist")
    assert X.shape == (10_000, 28, 28) and X.dtype == np.uint8
    assert y is not None and sorted(set(y.tolist())) == list(range(10))


def test_push_without_name_names_the_dataset_after_the_file(client: Client, tmp_path: Path) -> None:
    # The README: `lepton dataset push patients.csv` then `lepton dataset transform patients`.
    path = tmp_path / "Heart Disease.csv"
    path.write_text(HEART)

    assert client.datasets.push(path).ref == "heart-disease@v1"
    assert client.datasets.push(image_folder(tmp_path)).ref == "pets@v1"


# --- versions ----------------------------------------------------------------------------------


def test_new_content_is_v2_and_same_content_returns_the_existing_version(
    client: Client, heart: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "heart2.csv"
    changed.write_text(HEART + "99,F,300,1\n")

    v1 = client.datasets.push(heart, name="heart")
    v2 = client.datasets.push(changed, name="heart")
    again = client.datasets.push(heart, name="heart")

    assert (v1.ref, v1.created, v2.ref, v2.created) == ("heart@v1", True, "heart@v2", True)
    assert v2.rows == 31
    assert (again.ref, again.created, again.source_digest) == ("heart@v1", False, v1.source_digest)
    assert [v.ref for v in client.datasets.versions("heart")] == ["heart@v1", "heart@v2"]
    [listed] = client.datasets.list()
    assert (listed.name, listed.versions) == ("heart", 2)
    assert listed.latest is not None and listed.latest.ref == "heart@v2"
    assert client.datasets.get("heart").ref == "heart@v2"
    assert client.datasets.get("heart@latest").ref == "heart@v2"
    assert client.datasets.get("heart@v1").rows == 30
    assert client.datasets.get("heart@1").ref == "heart@v1"


def test_identical_push_over_http_is_200_created_false(
    api: TestClient, admin_token: str, heart: Path
) -> None:
    url, params = "/api/v1/datasets/heart/versions", {"source_name": "heart.csv"}
    headers = bearer(admin_token)
    original, changed = heart.read_bytes(), heart.read_bytes() + b"99,F,300,1\n"

    first = api.post(url, params=params, content=original, headers=headers)
    other = api.post(url, params=params, content=changed, headers=headers)
    again = api.post(url, params=params, content=original, headers=headers)

    assert (first.status_code, first.json()["ref"], first.json()["created"]) == (
        201,
        "heart@v1",
        True,
    )
    assert (other.status_code, other.json()["ref"]) == (201, "heart@v2")
    assert again.status_code == 200, again.text
    assert (again.json()["ref"], again.json()["created"]) == ("heart@v1", False)
    assert [v["ref"] for v in api.get(url, headers=headers).json()] == ["heart@v1", "heart@v2"]


def test_version_numbers_are_never_reused_after_a_delete(
    client: Client, heart: Path, tmp_path: Path
) -> None:
    # `heart@v2` names one immutable content forever: a job that trained on it must not find
    # other rows under the same reference after someone deletes it and pushes again.
    changed, other = tmp_path / "b.csv", tmp_path / "c.csv"
    changed.write_text(HEART + "99,F,300,1\n")
    other.write_text(HEART + "11,M,100,0\n")
    client.datasets.push(heart, name="heart")
    client.datasets.push(changed, name="heart")
    client.datasets.delete("heart@v2")

    v = client.datasets.push(other, name="heart")

    assert v.ref == "heart@v3"


# --- pull ------------------------------------------------------------------------------------


def test_pull_returns_the_exact_bytes_pushed(client: Client, tmp_path: Path) -> None:
    # CRLF line ends, non-ASCII text and a trailing blank line: all kept byte for byte.
    path = tmp_path / "people.csv"
    path.write_bytes("id,city\r\n1,Zürich\r\n2,Kraków\r\n\r\n".encode())
    v = client.datasets.push(path, name="people")

    out = client.datasets.pull("people@v1", tmp_path / "copy.csv")

    assert out == tmp_path / "copy.csv"
    assert out.read_bytes() == path.read_bytes()
    assert sha256(out) == v.source_digest == sha256(path)
    assert v.source_size == path.stat().st_size


# --- PII report ------------------------------------------------------------------------------

CARD = "4111 1111 1111 1111"  # Luhn-valid test card


@pytest.fixture
def patients(tmp_path: Path) -> Path:
    rows = [
        f"Ann Lee{i},ann{i}@example.com,+44 20 7946 {i:04d},{CARD},10.0.0.{i + 1},ok"
        for i in range(20)
    ]
    path = tmp_path / "patients.csv"
    path.write_text("name,email,phone,card,ip,notes\n" + "\n".join(rows) + "\n")
    return path


RAW_PII = ("ann0@example.com", "ann7@example.com", "7946 0003", CARD, "10.0.0.5", "Ann Lee3")


def test_pii_report_counts_findings_per_column_and_holds_no_raw_value(
    client: Client, patients: Path
) -> None:
    v = client.datasets.push(patients, name="patients")

    found = {(f.column, f.kind): f for f in v.pii.findings}
    assert set(found) == {
        ("name", "person_name"),
        ("email", "email"),
        ("phone", "phone"),
        ("card", "payment_card"),
        ("ip", "ip_address"),
    }
    for column in ("email", "phone", "card", "ip"):
        [finding] = [f for f in v.pii.findings if f.column == column]
        assert (finding.count, finding.fraction) == (20, 1.0)
        assert finding.examples and finding.reason
    assert v.pii.rows_scanned == 20
    report = v.pii.model_dump_json() + client.datasets.get("patients").pii.model_dump_json()
    leaked = [raw for raw in RAW_PII if raw in report]
    assert leaked == []


def test_version_metadata_shows_no_raw_value_of_a_column_flagged_as_pii(
    client: Client, patients: Path
) -> None:
    # `lepton dataset show` prints the profile's top values next to the masked PII examples;
    # masking the examples is pointless if the same screen lists the raw card numbers.
    v = client.datasets.push(patients, name="patients")

    shown = client.datasets.get("patients").model_dump_json()

    assert v.pii.findings
    leaked = [raw for raw in RAW_PII if raw in shown]
    assert leaked == []


# --- transforms ------------------------------------------------------------------------------


def test_drop_and_anonymize_make_v2_linked_to_v1_with_salt_fingerprinted(
    client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "patients.csv"
    emails = [f"p{i}@example.com" for i in range(10)]
    path.write_text(
        "patient_id,email,age\n" + "".join(f"{i},{e},{30 + i}\n" for i, e in enumerate(emails))
    )
    client.datasets.push(path, name="patients")

    v2 = client.datasets.transform(
        "patients@v1",
        [
            {"op": "drop", "columns": ["patient_id"]},
            {"op": "anonymize", "columns": ["email"], "salt": "pepper-1234"},
        ],
    )

    assert (v2.ref, v2.parent, v2.created, v2.rows) == ("patients@v2", "patients@v1", True, 10)
    assert v2.transform is not None
    drop, anonymize = v2.transform.steps
    assert drop.model_dump() == {"op": "drop", "columns": ["patient_id"]}
    assert anonymize.op == "anonymize" and anonymize.columns == ["email"]
    assert anonymize.salt is not None and anonymize.salt.startswith("sha256:")
    assert "pepper-1234" not in client.datasets.get("patients@v2").model_dump_json()
    frame = client.datasets.to_pandas("patients@v2")
    assert list(frame.columns) == ["email", "age"]
    assert not set(frame["email"]) & set(emails)
    assert frame["email"].nunique() == 10  # hashed, so still joinable
    assert frame["age"].tolist() == list(range(30, 40))
    assert client.datasets.get("patients").ref == "patients@v2"


def test_hashed_columns_are_not_taken_for_card_numbers_in_this_version_or_the_next(
    client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "patients.csv"
    path.write_text("email,age\n" + "".join(f"p{i}@example.com,{30 + i}\n" for i in range(10)))
    client.datasets.push(path, name="patients")
    # With this salt, p?@example.com hashes to 4201168496893722: all digits, passing Luhn.
    salt = "salt-871"

    v2 = client.datasets.transform(
        "patients", [{"op": "anonymize", "columns": ["email"], "salt": salt}]
    )
    v3 = client.datasets.transform(
        "patients@v2", [{"op": "rename", "mapping": {"email": "contact"}}]
    )

    assert "4201168496893722" in set(client.datasets.to_pandas("patients@v2")["email"])
    assert (v2.pii.findings, v2.pii.columns_hashed) == ([], ["email"])
    assert (v3.pii.findings, v3.pii.columns_hashed) == ([], ["contact"])
    frame = client.datasets.to_pandas("patients@v3")
    assert [c.name for c in v3.schema_] == ["contact", "age"] and frame["contact"].nunique() == 10


def test_transform_naming_an_unknown_column_suggests_the_closest_and_adds_nothing(
    client: Client, heart: Path, blobs: BlobStore, settings: Settings
) -> None:
    client.datasets.push(heart, name="heart")
    before = sorted(blobs.digests())

    with pytest.raises(InvalidRequest, match="the closest is 'chol'") as caught:
        client.datasets.transform("heart", [{"op": "drop", "columns": ["chlo"]}])

    assert "'chlo'" in caught.value.message
    assert [v.ref for v in client.datasets.versions("heart")] == ["heart@v1"]
    assert sorted(blobs.digests()) == before
    assert leftovers(settings) == []


# --- splits ----------------------------------------------------------------------------------


def test_mnist_split_is_stratified_stored_and_only_writers_create_it(
    platform: Platform, client: Client
) -> None:
    client.datasets.push(MNIST_DIR, name="mnist")

    split = client.datasets.split("mnist", train=0.8, validation=0, test=0.2, seed=0)
    again = client.datasets.split("mnist@v1", train=0.8, validation=0, test=0.2, seed=0)

    assert split.counts == {"train": 8000, "validation": 0, "test": 2000}
    assert split.strategy == "stratified"
    assert again.digest == split.digest
    assignment = client.datasets.split_assignment("mnist", split)
    assert assignment.dtype == np.uint8 and assignment.shape == (10_000,)
    assert np.bincount(assignment, minlength=3).tolist() == [8000, 0, 2000]
    # Stratified: every digit keeps its share of the test set (within one row of rounding).
    _, y = client.datasets.to_numpy("mnist")
    assert y is not None
    for digit in range(10):
        rows = assignment[y == digit]
        assert abs((rows == 2).sum() - 0.2 * len(rows)) <= 1

    viewer = platform.client(platform.token(platform.admin, role="viewer"))
    with pytest.raises(PermissionDenied):
        viewer.datasets.split("mnist", train=0.7, validation=0.1, test=0.2, seed=1)
    # Reading a stored split is fine for a viewer: it is how a training job gets its rows.
    np.testing.assert_array_equal(viewer.datasets.split_assignment("mnist", split), assignment)


# --- delete and erasure ----------------------------------------------------------------------


def test_deleting_a_parent_is_refused_naming_the_child_then_forced(
    client: Client, heart: Path, blobs: BlobStore, tmp_path: Path
) -> None:
    v1 = client.datasets.push(heart, name="heart")
    v2 = client.datasets.transform("heart", [{"op": "drop", "columns": ["chol"]}])

    with pytest.raises(Conflict, match="heart@v2") as caught:
        client.datasets.delete("heart@v1")
    assert "--force" in caught.value.fix
    assert client.datasets.get("heart@v1").ref == "heart@v1"

    client.datasets.delete("heart@v1", force=True)

    child = client.datasets.get("heart@v2")
    assert child.parent is None and child.transform is not None
    assert [v.ref for v in client.datasets.versions("heart")] == ["heart@v2"]
    with pytest.raises(NotFound):
        client.datasets.pull("heart@v1", tmp_path / "gone.csv")
    assert not (tmp_path / "gone.csv").exists()
    assert not blobs.exists(v1.source_digest) and not blobs.exists(v1.data_digest)
    assert blobs.exists(v2.data_digest)
    assert "chol" not in client.datasets.to_pandas("heart@v2")


def test_deleting_a_dataset_removes_it_and_erases_its_bytes_and_splits(
    client: Client, heart: Path, blobs: BlobStore
) -> None:
    v1 = client.datasets.push(heart, name="heart")
    v2 = client.datasets.transform("heart", [{"op": "drop", "columns": ["age"]}])
    split = client.datasets.split("heart", seed=3)
    digests = {v1.source_digest, v1.data_digest, v2.data_digest, split.digest}
    assert all(blobs.exists(d) for d in digests)

    client.datasets.delete("heart")

    assert client.datasets.list() == []
    with pytest.raises(NotFound):
        client.datasets.get("heart")
    assert [d for d in digests if blobs.exists(d)] == []


def test_bytes_shared_with_another_dataset_survive_until_the_last_user_goes(
    client: Client, heart: Path, blobs: BlobStore, tmp_path: Path
) -> None:
    a = client.datasets.push(heart, name="a")
    b = client.datasets.push(heart, name="b")
    assert b.created and (a.source_digest, a.data_digest) == (b.source_digest, b.data_digest)

    client.datasets.delete("a@v1")

    assert blobs.exists(a.source_digest) and blobs.exists(a.data_digest)
    assert client.datasets.pull("b", tmp_path / "b.csv").read_bytes() == heart.read_bytes()

    client.datasets.delete("b")

    assert not blobs.exists(a.source_digest) and not blobs.exists(a.data_digest)


# --- bad input leaves nothing behind ---------------------------------------------------------


def zip_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


BAD_FILES = {
    "ragged": ("ragged.csv", b"a,b,c\n1,2,3\n4,5\n", "line 3"),
    "empty": ("empty.csv", b"", "empty"),
    "not-utf8": ("latin.csv", b"name,city\nJos\xe9,Le\xf3n\n", "line 2"),
    "zip-slip": ("pets.zip", zip_with({"cat/a.png": b"x", "../evil.png": b"x"}), "'../evil.png'"),
    "corrupt-parquet": ("cut.parquet", b"PAR1" + b"\0" * 64 + b"PAR1", "Parquet"),
}


@pytest.mark.parametrize(("filename", "data", "where"), BAD_FILES.values(), ids=BAD_FILES)
def test_bad_file_is_refused_naming_file_and_place_and_stores_nothing(
    client: Client,
    heart: Path,
    blobs: BlobStore,
    settings: Settings,
    tmp_path: Path,
    filename: str,
    data: bytes,
    where: str,
) -> None:
    client.datasets.push(heart, name="heart")
    before_list = client.datasets.list()
    before_blobs = sorted(blobs.digests())
    bad = tmp_path / filename
    bad.write_bytes(data)

    for name in ("heart", "fresh"):  # a new version of an existing dataset, and a new dataset
        with pytest.raises(DataError) as caught:
            client.datasets.push(bad, name=name)
        assert filename in caught.value.message and where in caught.value.message
        assert caught.value.fix

    assert client.datasets.list() == before_list
    assert [v.ref for v in client.datasets.versions("heart")] == ["heart@v1"]
    assert sorted(blobs.digests()) == before_blobs
    assert leftovers(settings) == []


def test_unknown_target_is_refused_suggesting_the_closest_and_stores_nothing(
    client: Client, heart: Path, blobs: BlobStore, settings: Settings
) -> None:
    with pytest.raises(InvalidRequest, match="'label'") as caught:
        client.datasets.push(heart, name="heart", target="lable")

    assert "'lable'" in caught.value.message
    assert client.datasets.list() == []
    assert list(blobs.digests()) == []
    assert leftovers(settings) == []


# --- upload limit ----------------------------------------------------------------------------


@dataclass
class Limited:
    """A server that takes uploads of at most 1000 bytes, and the SDK wired to it."""

    api: TestClient
    client: Client
    token: str
    settings: Settings
    blobs: BlobStore


@pytest.fixture
def limited(
    make_app: Callable[[Settings], FastAPI], settings: Settings, started: Started
) -> Iterator[Limited]:
    small = replace(settings, max_upload_bytes=1000)
    app = make_app(small)
    with TestClient(app) as tc:
        assert started.first is not None
        token = started.first.token
        client = Client(url=str(tc.base_url), token=token, http=tc, settings=small)
        yield Limited(tc, client, token, small, app.state.lepton.ctx.blobs)


def test_push_over_the_upload_limit_is_413_naming_it_and_stores_nothing(
    limited: Limited, tmp_path: Path
) -> None:
    client = limited.client
    path = tmp_path / "big.csv"
    path.write_text("n\n" + "".join(f"{i:07d}\n" for i in range(250)))
    assert path.stat().st_size == 2002

    with pytest.raises(PayloadTooLarge, match="1000 bytes") as caught:
        client.datasets.push(path, name="big")

    assert "LEPTON_MAX_UPLOAD_BYTES" in caught.value.fix
    # Without a Content-Length the server counts as the body streams in.
    chunks = iter([path.read_bytes()[:800], path.read_bytes()[800:]])
    r = limited.api.post(
        "/api/v1/datasets/big/versions",
        params={"source_name": "big.csv"},
        content=chunks,
        headers=bearer(limited.token),
    )
    assert r.status_code == 413 and "1000 bytes" in r.json()["error"]["message"]
    assert client.datasets.list() == []
    assert list(limited.blobs.digests()) == []
    assert leftovers(limited.settings) == []


# --- bundled samples -------------------------------------------------------------------------


def test_sample_breast_cancer_has_a_two_class_diagnosis(client: Client) -> None:
    v = client.datasets.push(load_sample("breast-cancer"), name="breast-cancer")

    assert (v.rows, v.target, v.profile.target_guessed) == (569, "diagnosis", True)
    assert len(v.schema_) == 31
    balance = {b.value: b.count for b in v.profile.class_balance or []}
    assert balance == {"malignant": 212, "benign": 357}


def test_sample_digits_guesses_digit_with_ten_classes(client: Client) -> None:
    v = client.datasets.push(load_sample("digits"), name="digits")

    assert (v.rows, v.target, len(v.schema_)) == (1797, "digit", 65)
    assert len(v.profile.class_balance or []) == 10


def test_sample_diabetes_has_a_numeric_target_and_no_class_balance(client: Client) -> None:
    v = client.datasets.push(load_sample("diabetes"), name="diabetes", target="progression")

    assert (v.rows, v.target) == (442, "progression")
    assert kinds(v)["progression"] == "numeric"
    assert v.profile.class_balance is None


def test_sample_co2_has_a_datetime_column_and_its_gaps(client: Client) -> None:
    v = client.datasets.push(load_sample("co2"), name="co2")

    assert v.rows == 2284
    assert kinds(v) == {"date": "datetime", "co2": "numeric"}
    assert {c.name: c.nulls for c in v.schema_} == {"date": 0, "co2": 59}


def test_unknown_sample_lists_the_samples() -> None:
    with pytest.raises(InvalidRequest) as caught:
        load_sample("iris")

    assert "'iris'" in caught.value.message
    assert all(name in caught.value.message for name in SAMPLES)
    assert set(SAMPLES) == {"breast-cancer", "digits", "diabetes", "co2", "mnist"}


# --- names and references --------------------------------------------------------------------


def test_bad_dataset_name_is_refused_and_stores_nothing(
    client: Client, api: TestClient, admin_token: str, heart: Path, blobs: BlobStore
) -> None:
    with pytest.raises(InvalidRequest, match="dataset_name"):
        client.datasets.push(heart, name="Bad Name!")
    r = api.post(
        "/api/v1/datasets/Bad%20Name!/versions",
        params={"source_name": "heart.csv"},
        content=heart.read_bytes(),
        headers=bearer(admin_token),
    )

    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert client.datasets.list() == []
    assert list(blobs.digests()) == []


def test_a_version_that_is_not_a_number_is_invalid(client: Client, heart: Path) -> None:
    client.datasets.push(heart, name="heart")

    with pytest.raises(InvalidRequest, match="'banana'") as caught:
        client.datasets.get("heart@banana")

    assert "heart@v1" in caught.value.fix


def test_unknown_dataset_is_not_found_with_how_to_push_it(client: Client) -> None:
    with pytest.raises(NotFound, match="'nope'") as caught:
        client.datasets.get("nope")

    assert "lepton dataset push" in caught.value.fix


def test_unknown_version_of_a_dataset_is_not_found(client: Client, heart: Path) -> None:
    client.datasets.push(heart, name="heart")

    with pytest.raises(NotFound, match="v7"):
        client.datasets.get("heart@v7")


def test_pushing_an_unsupported_object_says_what_is_accepted(client: Client) -> None:
    bogus: Any = {1, 2, 3}

    with pytest.raises(InvalidRequest, match="set") as caught:
        client.datasets.push(bogus, name="bogus")

    assert "DataFrame" in caught.value.fix
