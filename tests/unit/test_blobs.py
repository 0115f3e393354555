"""The blob store on a local folder: round trips, encryption at rest, tampering, keys."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton.errors import BlobIntegrityError, ConfigError, NotFound
from lepton.settings import Settings
from lepton.store.blobs import BlobStore
from lepton.store.crypto import (
    CHUNK,
    HEADER_SIZE,
    TAG_SIZE,
    Encryptor,
    decrypt_stream,
    key_fingerprint,
    load_or_create_key,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SEALED = CHUNK + TAG_SIZE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(root: Path) -> BlobStore:
    return BlobStore(str(root), KEY)


def object_path(root: Path, digest: str) -> Path:
    return root / "objects" / digest[:2] / digest[2:4] / digest


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("key", [KEY, None], ids=["encrypted", "plain"])
@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 12345])
def test_round_trip_returns_the_same_bytes_named_by_their_sha256(
    root: Path, key: bytes | None, size: int
) -> None:
    store = BlobStore(str(root), key)
    data = os.urandom(size)

    info = store.put_bytes(data)

    assert info.digest == hashlib.sha256(data).hexdigest()
    assert info.size == size
    assert store.exists(info.digest)
    assert store.read_bytes(info.digest) == data
    assert object_path(root, info.digest).is_file()


def test_file_url_and_missing_folder_work(tmp_path: Path) -> None:
    store = BlobStore(f"file://{tmp_path}/a/b", KEY)
    info = store.put_bytes(b"hello")
    assert store.read_bytes(info.digest) == b"hello"
    assert store.url == f"file://{tmp_path}/a/b"
    assert store.encrypted


def test_same_content_twice_is_stored_once(store: BlobStore, root: Path) -> None:
    first = store.put_bytes(b"same bytes" * 1000)
    second = store.put([b"same bytes" * 500, b"same bytes" * 500])

    assert first == second
    assert stored_files(root) == [object_path(root, first.digest)]
    assert list(store.digests()) == [first.digest]


def test_blob_is_not_plaintext_on_disk_when_encrypted(tmp_path: Path) -> None:
    data = b"MARKER-7f3a-patient-record " * 2000
    for key, leaks in ((KEY, False), (None, True)):
        root = tmp_path / ("enc" if key else "plain")
        info = BlobStore(str(root), key).put_bytes(data)
        raw = object_path(root, info.digest).read_bytes()
        assert (b"MARKER-7f3a" in raw) is leaks


def test_reads_stream_in_chunks_of_at_most_one_mib(store: BlobStore) -> None:
    data = os.urandom(5 * CHUNK + 7)
    info = store.put_bytes(data)

    chunks = list(store.open(info.digest))

    assert len(chunks) == 6
    assert max(len(c) for c in chunks) <= CHUNK
    assert b"".join(chunks) == data


def test_writes_go_to_storage_before_the_input_ends(store: BlobStore, root: Path) -> None:
    on_disk_mid_write: list[int] = []

    def source() -> Iterator[bytes]:
        for _ in range(4):
            yield os.urandom(CHUNK)
        # Three chunks are known not to be last, so they are already sealed and written.
        on_disk_mid_write.append(sum(p.stat().st_size for p in (root / "tmp").iterdir()))
        yield b"end"

    info = store.put(source())

    assert on_disk_mid_write[0] >= HEADER_SIZE + 3 * SEALED
    assert info.size == 4 * CHUNK + 3
    assert list((root / "tmp").iterdir()) == []


def test_object_on_disk_has_one_tag_per_chunk(store: BlobStore, root: Path) -> None:
    info = store.put_bytes(os.urandom(2 * CHUNK + 10))
    size = object_path(root, info.digest).stat().st_size
    assert size == HEADER_SIZE + 2 * CHUNK + 10 + 3 * TAG_SIZE


def test_encryption_does_not_depend_on_how_the_input_is_split() -> None:
    data = os.urandom(2 * CHUNK + 777)
    enc = Encryptor(KEY)
    sealed = [c for i in range(0, len(data), 300_007) for c in enc.update(data[i : i + 300_007])]
    blob = b"".join([*sealed, *enc.finish()])
    # Re-cut the ciphertext so that the header and every chunk straddle piece boundaries.
    pieces = [blob[:5]] + [blob[i : i + 99_991] for i in range(5, len(blob), 99_991)]

    plain = list(decrypt_stream(KEY, pieces))

    assert b"".join(plain) == data
    assert [len(p) for p in plain] == [CHUNK, CHUNK, 777]


@pytest.mark.parametrize("where", ["header nonce", "first chunk", "last tag"])
def test_a_flipped_byte_is_detected(store: BlobStore, root: Path, where: str) -> None:
    info = store.put_bytes(os.urandom(2 * CHUNK + 100))
    path = object_path(root, info.digest)
    raw = bytearray(path.read_bytes())
    offset = {"header nonce": HEADER_SIZE - 1, "first chunk": HEADER_SIZE + 10, "last tag": -1}
    raw[offset[where]] ^= 0x01
    path.write_bytes(raw)

    with pytest.raises(BlobIntegrityError, match="altered or truncated"):
        store.read_bytes(info.digest)


@pytest.mark.parametrize(
    ("keep", "error"),
    [
        (HEADER_SIZE + SEALED + 500, "failed authentication at chunk 1"),
        # Dropping whole chunks leaves a well-formed stream: the last flag is what catches it,
        # before the sha256 at the end would.
        (HEADER_SIZE + 2 * SEALED, "failed authentication at chunk 1"),
        (HEADER_SIZE - 3, "not an encrypted Lepton blob"),
    ],
    ids=["mid chunk", "at a chunk boundary", "inside the header"],
)
def test_truncation_is_detected(store: BlobStore, root: Path, keep: int, error: str) -> None:
    info = store.put_bytes(os.urandom(3 * CHUNK))
    path = object_path(root, info.digest)
    path.write_bytes(path.read_bytes()[:keep])

    with pytest.raises(BlobIntegrityError, match=error):
        store.read_bytes(info.digest)


def test_swapped_chunks_are_detected(store: BlobStore, root: Path) -> None:
    info = store.put_bytes(os.urandom(3 * CHUNK + 5))
    path = object_path(root, info.digest)
    raw = path.read_bytes()
    first = raw[HEADER_SIZE : HEADER_SIZE + SEALED]
    second = raw[HEADER_SIZE + SEALED : HEADER_SIZE + 2 * SEALED]
    path.write_bytes(raw[:HEADER_SIZE] + second + first + raw[HEADER_SIZE + 2 * SEALED :])

    with pytest.raises(BlobIntegrityError, match="failed authentication at chunk 0"):
        store.read_bytes(info.digest)


def test_wrong_key_names_both_fingerprints(root: Path) -> None:
    info = BlobStore(str(root), KEY).put_bytes(b"written with the first key")

    with pytest.raises(BlobIntegrityError) as caught:
        BlobStore(str(root), OTHER_KEY).read_bytes(info.digest)

    message = str(caught.value)
    assert key_fingerprint(KEY) in message
    assert key_fingerprint(OTHER_KEY) in message
    assert "LEPTON_ENCRYPTION_KEY" in message


def test_plain_store_detects_a_flipped_byte_by_its_hash(root: Path) -> None:
    store = BlobStore(str(root), None)
    info = store.put_bytes(b"plain text " * 100)
    path = object_path(root, info.digest)
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0x20
    path.write_bytes(raw)

    with pytest.raises(BlobIntegrityError, match="sha256"):
        store.read_bytes(info.digest)


def test_encrypted_store_refuses_a_blob_written_without_encryption(root: Path) -> None:
    info = BlobStore(str(root), None).put_bytes(b"plain")
    with pytest.raises(BlobIntegrityError, match="not an encrypted Lepton blob"):
        BlobStore(str(root), KEY).read_bytes(info.digest)


def test_a_writer_aborted_by_an_exception_leaves_nothing(store: BlobStore, root: Path) -> None:
    with pytest.raises(RuntimeError, match="upload dropped"), store.writer() as w:
        w.write(os.urandom(2 * CHUNK))
        raise RuntimeError("upload dropped")

    with store.writer() as w:
        w.write(b"never committed")

    assert stored_files(root) == []
    assert list(store.digests()) == []


def test_a_committed_writer_cannot_be_written_again(store: BlobStore) -> None:
    with store.writer() as w:
        w.write(b"abc")
        info = w.commit()
        with pytest.raises(ValueError, match=r"store\.writer\(\)"):
            w.write(b"more")
    assert store.read_bytes(info.digest) == b"abc"


def test_clean_temp_removes_leftovers_from_a_crash(store: BlobStore, root: Path) -> None:
    kept = store.put_bytes(b"a real blob")
    for name in ("crashed-1", "crashed-2"):
        (root / "tmp" / name).write_bytes(b"half")
        os.utime(root / "tmp" / name, (time.time() - 7200, time.time() - 7200))

    assert store.clean_temp() == 2
    assert list((root / "tmp").iterdir()) == []
    assert store.clean_temp() == 0
    assert store.read_bytes(kept.digest) == b"a real blob"


def test_clean_temp_keeps_a_write_in_progress(store: BlobStore, root: Path) -> None:
    # Several control planes share a store: one starting must not cut another's upload.
    with store.writer() as writer:
        writer.write(b"first half")
        assert store.clean_temp() == 0
        writer.write(b" and the rest")
        info = writer.commit()

    assert store.read_bytes(info.digest) == b"first half and the rest"


@pytest.mark.parametrize("digest", ["../etc/passwd", "AB" * 32, "abc", "g" * 64, ""])
def test_malformed_digests_are_refused_before_any_path_is_built(
    store: BlobStore, tmp_path: Path, digest: str
) -> None:
    for call in (store.open, store.read_bytes, store.delete):
        with pytest.raises(NotFound, match="64 lowercase hex"):
            call(digest)
    assert store.exists(digest) is False


def test_absent_blob_is_not_found_at_open_and_delete_is_quiet(store: BlobStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(NotFound, match=missing):
        store.open(missing)
    store.delete(missing)

    info = store.put_bytes(b"to delete")
    store.delete(info.digest)
    assert not store.exists(info.digest)
    with pytest.raises(NotFound):
        store.read_bytes(info.digest)


def test_digests_lists_every_blob_sorted(store: BlobStore, root: Path) -> None:
    infos = [store.put_bytes(bytes([i]) * 10) for i in range(5)]
    (root / "objects" / "README").write_text("not a blob")
    assert list(store.digests()) == sorted(i.digest for i in infos)


def test_key_file_is_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")

    key = load_or_create_key(settings)

    assert len(key) == 32
    assert stat.S_IMODE(settings.key_path.stat().st_mode) == 0o600
    assert load_or_create_key(settings) == key
    written = BlobStore.from_settings(settings).put_bytes(b"survives a restart")
    assert BlobStore.from_settings(settings).read_bytes(written.digest) == b"survives a restart"
    # No temp key file is left beside the real one.
    assert sorted(p.name for p in settings.home.iterdir()) == ["blobs", "encryption.key"]


def test_key_file_race_uses_the_key_the_other_process_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path)
    theirs = base64.b64encode(OTHER_KEY) + b"\n"
    real_link = os.link

    def other_process_wins(src: str | Path, dst: str | Path) -> None:
        Path(dst).write_bytes(theirs)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", other_process_wins)

    assert load_or_create_key(settings) == OTHER_KEY
    assert [p.name for p in tmp_path.iterdir()] == ["encryption.key"]


def test_key_from_environment_accepts_standard_and_urlsafe_base64(tmp_path: Path) -> None:
    key = b"\xfb\xff" * 16  # encodes with + and / in standard base64
    for encoded in (base64.b64encode(key), base64.urlsafe_b64encode(key).rstrip(b"=")):
        env = {"LEPTON_ENCRYPTION_KEY": encoded.decode(), "LEPTON_HOME": str(tmp_path)}
        assert load_or_create_key(Settings.from_env(env)) == key
    assert not (tmp_path / "encryption.key").exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("not a key!", "not valid base64"), (base64.b64encode(b"x" * 16).decode(), "16 bytes")],
)
def test_bad_environment_key_says_how_to_make_one(tmp_path: Path, value: str, problem: str) -> None:
    settings = Settings.from_env({"LEPTON_ENCRYPTION_KEY": value, "LEPTON_HOME": str(tmp_path)})

    with pytest.raises(ConfigError, match=problem) as caught:
        load_or_create_key(settings)

    assert "os.urandom(32)" in caught.value.fix
    assert value not in str(caught.value)


def test_damaged_key_file_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.key_path.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match=r"encryption\.key decodes to 5 bytes"):
        load_or_create_key(settings)
