"""Encryption at rest: the key, a streaming AES-256-GCM format for blobs, and sealed values.

The format follows the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015)::

    header  = b"LPB1" | key fingerprint (8 bytes) | random nonce prefix (7 bytes)
    chunk i = AES-GCM(key, nonce = prefix | i as 4 bytes big-endian | last flag, plaintext_i)

Every chunk but the last holds exactly ``CHUNK`` plaintext bytes; the last holds 0 to ``CHUNK``
and is sealed with last flag 1. Because the position and the "last" bit are in the nonce, and the
header is the associated data of every chunk, a reader detects a flipped byte, a chunk moved or
swapped, a blob cut at a chunk boundary, and a header grafted from another blob.

Small values (workspace secrets) are sealed whole, with :func:`seal`::

    sealed = b"LPS1" | key fingerprint (8 bytes) | random nonce (12 bytes) | AES-GCM(plaintext)

with the header and the caller's ``context`` (which row the value belongs to) as associated
data, so a sealed value copied into another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lepton.errors import BlobIntegrityError, ConfigError
from lepton.settings import Settings

__all__ = [
    "CHUNK",
    "HEADER_SIZE",
    "KEY_SIZE",
    "MAGIC",
    "TAG_SIZE",
    "Encryptor",
    "decrypt_stream",
    "key_fingerprint",
    "load_or_create_key",
    "seal",
    "unseal",
]

KEY_SIZE = 32  # AES-256
CHUNK = 1024 * 1024  # 1 MiB: 16 bytes of tag per MiB is 0.0015 % overhead, and two chunks in RAM
MAGIC = b"LPB1"
_FP_SIZE = 8
# 7 random bytes per blob: nonces stay unique up to ~2**28 blobs under one key (birthday bound
# at a 2**-1 collision chance is 2**28; at 2**20 blobs the chance is ~2**-17).
_PREFIX_SIZE = 7
HEADER_SIZE = len(MAGIC) + _FP_SIZE + _PREFIX_SIZE
TAG_SIZE = 16
_MAX_CHUNKS = 2**32  # a 4-byte counter: 4 PiB per blob

_MAKE_KEY = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'


def _decode_key(text: str) -> bytes | None:
    """Standard or urlsafe base64, padding optional; ``None`` when it is not base64."""
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    for altchars in (b"+/", b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _key_from_env(raw: str) -> bytes:
    # The value is never echoed: a nearly-right key is still a secret.
    key = _decode_key(raw)
    if key is None:
        raise ConfigError(
            "LEPTON_ENCRYPTION_KEY is not valid base64",
            fix=f"set it to the base64 of 32 random bytes, made with: {_MAKE_KEY}",
        )
    if len(key) != KEY_SIZE:
        raise ConfigError(
            f"LEPTON_ENCRYPTION_KEY decodes to {len(key)} bytes; an AES-256 key is {KEY_SIZE}",
            fix=f"set it to the base64 of 32 random bytes, made with: {_MAKE_KEY}",
        )
    return key


def _read_key_file(path: Path) -> bytes:
    key = _decode_key(path.read_text(encoding="ascii", errors="replace"))
    if key is None or len(key) != KEY_SIZE:
        got = "is not base64" if key is None else f"decodes to {len(key)} bytes"
        raise ConfigError(
            f"encryption key file {path} {got}; it must hold the base64 of {KEY_SIZE} bytes",
            fix=(
                "restore the file from a backup, or set LEPTON_ENCRYPTION_KEY to the key that "
                "wrote your blobs; delete the file only if no blobs were stored with it"
            ),
        )
    return key


def load_or_create_key(settings: Settings) -> bytes:
    """The 32-byte blob key: ``LEPTON_ENCRYPTION_KEY``, else the key file, made on first use.

    Raises:
        ConfigError: the variable or the file does not hold the base64 of 32 bytes.
    """
    if settings.encryption_key:
        return _key_from_env(settings.encryption_key)
    path = settings.key_path
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Write a private temp file, then hard-link it into place: the link fails if another process
    # made the key first, and nobody ever reads a half-written key file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(os.urandom(KEY_SIZE)) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass  # lost the race: use the key the other process wrote
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _fingerprint_bytes(key: bytes) -> bytes:
    return hashlib.sha256(b"lepton-key-id" + key).digest()[:_FP_SIZE]


def key_fingerprint(key: bytes) -> str:
    """A public id of the key (16 hex chars), safe to print and store beside blobs."""
    return _fingerprint_bytes(key).hex()


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise ValueError(f"a blob holds at most {_MAX_CHUNKS} chunks of {CHUNK} bytes")
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class Encryptor:
    """Turns plaintext of any length, fed in pieces, into the chunked format.

    Holds at most one chunk of plaintext between calls.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"key is {len(key)} bytes; AES-256 needs {KEY_SIZE}")
        self._aead = AESGCM(key)
        self._prefix = os.urandom(_PREFIX_SIZE)
        self._header = MAGIC + _fingerprint_bytes(key) + self._prefix
        self._counter = 0
        self._buffer = bytearray()
        self._header_sent = False
        self._finished = False

    def _seal(self, plaintext: bytes | bytearray, last: bool) -> bytes:
        nonce = _nonce(self._prefix, self._counter, last)
        self._counter += 1
        return self._aead.encrypt(nonce, plaintext, self._header)

    def _start(self) -> list[bytes]:
        if self._finished:
            raise ValueError("Encryptor.finish() was already called")
        if self._header_sent:
            return []
        self._header_sent = True
        return [self._header]

    def update(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Feed plaintext; returns the ciphertext pieces that are ready (maybe none)."""
        out = self._start()
        self._buffer += data
        # Strictly more than a chunk: the last chunk is only known at finish(), so a full chunk
        # waits until at least one more byte proves it is not the last.
        while len(self._buffer) > CHUNK:
            out.append(self._seal(self._buffer[:CHUNK], last=False))
            del self._buffer[:CHUNK]
        return out

    def finish(self) -> list[bytes]:
        """Seal the last chunk (empty for an empty plaintext) and return what is left."""
        out = self._start()
        out.append(self._seal(self._buffer, last=True))
        self._buffer.clear()
        self._finished = True
        return out


def decrypt_stream(key: bytes, chunks: Iterable[bytes], *, name: str = "blob") -> Iterator[bytes]:
    """Yield the plaintext of a stream made by :class:`Encryptor`, one chunk at a time.

    ``chunks`` may be split anywhere; at most about two chunks are buffered.

    Raises:
        BlobIntegrityError: not this format, another key, or any chunk altered or missing.
    """
    aead = AESGCM(key)
    sealed = CHUNK + TAG_SIZE
    buffer = bytearray()
    header = b""
    counter = 0

    def open_chunk(last: bool) -> bytes:
        nonlocal counter
        size = len(buffer) if last else sealed
        try:
            plain = aead.decrypt(
                _nonce(header[-_PREFIX_SIZE:], counter, last), buffer[:size], header
            )
        except (InvalidTag, ValueError):
            raise BlobIntegrityError(
                f"{name} failed authentication at chunk {counter}: it was altered or truncated",
                fix="restore it from a backup or upload it again; the stored bytes are not usable",
            ) from None
        del buffer[:size]
        counter += 1
        return plain

    for piece in chunks:
        buffer += piece
        if not header and len(buffer) >= HEADER_SIZE:
            header = _check_header(bytes(buffer[:HEADER_SIZE]), key, name)
            del buffer[:HEADER_SIZE]
        # Strictly more than one sealed chunk: only then is the first one known not to be last.
        while header and len(buffer) > sealed:
            yield open_chunk(last=False)
    if not header:
        _check_header(bytes(buffer), key, name)
    yield open_chunk(last=True)


def _check_header(header: bytes, key: bytes, name: str) -> bytes:
    if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
        raise BlobIntegrityError(
            f"{name} is not an encrypted Lepton blob (no {MAGIC.decode()} header); it was "
            "truncated, altered, or written by a store without encryption",
            fix="read it with the store settings that wrote it, or restore it from a backup",
        )
    stored = header[len(MAGIC) : len(MAGIC) + _FP_SIZE].hex()
    if stored != key_fingerprint(key):
        raise BlobIntegrityError(
            f"{name} was encrypted with key {stored}, the configured key is {key_fingerprint(key)}",
            fix="set LEPTON_ENCRYPTION_KEY to the key that wrote it",
        )
    return header


SEALED_MAGIC = b"LPS1"
_SEALED_NONCE = 12  # random 96-bit nonces: a 2**-32 collision chance only after 2**32 values
_SEALED_HEADER = len(SEALED_MAGIC) + _FP_SIZE + _SEALED_NONCE


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """``plaintext`` encrypted and authenticated under ``key`` with a fresh random nonce;
    ``context`` must be given again to :func:`unseal` (it is not stored)."""
    header = SEALED_MAGIC + _fingerprint_bytes(key) + os.urandom(_SEALED_NONCE)
    return header + AESGCM(key).encrypt(header[-_SEALED_NONCE:], plaintext, header + context)


def unseal(key: bytes, sealed: bytes, context: bytes, *, name: str = "sealed value") -> bytes:
    """The plaintext :func:`seal` sealed with this ``key`` and ``context``.

    Raises:
        BlobIntegrityError: not a sealed value, another key, another context, or altered.
    """
    header = sealed[:_SEALED_HEADER]
    if len(sealed) < _SEALED_HEADER + TAG_SIZE or not header.startswith(SEALED_MAGIC):
        raise BlobIntegrityError(
            f"{name} is not a sealed Lepton value", fix="set it again; the stored bytes are lost"
        )
    stored = header[len(SEALED_MAGIC) : len(SEALED_MAGIC) + _FP_SIZE].hex()
    if stored != key_fingerprint(key):
        raise BlobIntegrityError(
            f"{name} was sealed with key {stored}, the configured key is {key_fingerprint(key)}",
            fix="set LEPTON_ENCRYPTION_KEY to the key that sealed it, or set the value again",
        )
    try:
        return AESGCM(key).decrypt(
            header[-_SEALED_NONCE:], sealed[_SEALED_HEADER:], header + context
        )
    except InvalidTag:
        raise BlobIntegrityError(
            f"{name} failed authentication: it was altered, or belongs to another row",
            fix="set the value again; the stored bytes are not usable",
        ) from None
