"""Content-addressed blob store on any fsspec URL, encrypted at rest, streamed in and out.

A blob is named by the sha256 of its plaintext and lives at
``<root>/objects/<d[:2]>/<d[2:4]>/<digest>``. A write streams into ``<root>/tmp/<uuid>`` while
hashing, then moves into place, so a reader never sees a partly written object at its final
path. No call holds a whole blob in memory: data moves in chunks of ``CHUNK`` (1 MiB).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from lepton.errors import BlobIntegrityError, NotFound
from lepton.settings import Settings
from lepton.store.crypto import CHUNK, Encryptor, decrypt_stream, load_or_create_key

__all__ = ["BlobInfo", "BlobStore", "BlobWriter"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobInfo:
    """What a committed write stored."""

    digest: str
    """Lowercase hex sha256 of the plaintext."""
    size: int
    """Plaintext bytes."""


def _writer_gone(name: str) -> bool:
    """Whether the temp object ``name`` (``host@pid@uuid``) was written by a process of this
    host that has ended."""
    host, _, rest = name.partition("@")
    pid = rest.partition("@")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _fsync_dir(path: str) -> None:
    # A rename is durable only once the directory that holds the new name is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Blobs under one fsspec URL: a local folder (made if missing), ``s3://bucket/prefix``, ...

    Args:
        url: where blobs live. S3 credentials and endpoint come from the usual ``AWS_*``
            variables (``AWS_ENDPOINT_URL`` included).
        key: 32-byte AES key, or ``None`` to store plaintext.
        storage_options: extra arguments for the fsspec filesystem (e.g. ``endpoint_url``).
    """

    def __init__(
        self, url: str, key: bytes | None, *, storage_options: dict[str, Any] | None = None
    ) -> None:
        if key is not None and len(key) != 32:
            raise ValueError(f"key is {len(key)} bytes; AES-256 needs 32 (or None for plain)")
        options = dict(storage_options or {})
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol not in ("file", "local"):
            # Other processes add and delete objects: a cached listing would go stale. A private
            # instance keeps the options of this store from leaking into fsspec's global cache.
            options.setdefault("use_listings_cache", False)
            options.setdefault("skip_instance_cache", True)
        self._fs, root = url_to_fs(url, **options)
        self._url = url
        self._key = key
        self._root = root.rstrip("/")
        self._local = isinstance(self._fs, LocalFileSystem)
        if self._local:
            os.makedirs(self._path("objects"), exist_ok=True)
            os.makedirs(self._path("tmp"), exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """The store at ``settings.storage`` with the configured (or generated) key."""
        return cls(settings.storage, load_or_create_key(settings))

    @property
    def url(self) -> str:
        """The URL this store was opened with."""
        return self._url

    @property
    def encrypted(self) -> bool:
        """Whether blobs are encrypted at rest."""
        return self._key is not None

    def writer(self) -> BlobWriter:
        """A streaming writer; use it as a context manager and call ``commit()``."""
        return BlobWriter(self)

    def put(self, chunks: Iterable[bytes]) -> BlobInfo:
        """Store the concatenation of ``chunks``, consumed one at a time."""
        with self.writer() as w:
            for chunk in chunks:
                w.write(chunk)
            return w.commit()

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store ``data``."""
        return self.put([data])

    def open(self, digest: str) -> Iterator[bytes]:
        """Yield the plaintext of blob ``digest`` in chunks of at most 1 MiB.

        With encryption every chunk is authenticated before it is yielded. The sha256 is
        checked after the last chunk, so act on the data only once iteration ends cleanly.

        Raises:
            NotFound: ``digest`` is malformed or no such blob is stored (raised at once).
            BlobIntegrityError: the stored bytes were altered, truncated or use another key.
        """
        # Opened now, not at the first chunk: a missing blob is a NotFound at once, and a local
        # file erased while a reader streams it (a checkpoint replaced) stays readable.
        raw = self._open_raw(digest, self._object_path(digest))
        stream = self._read(digest, raw)
        weakref.finalize(stream, raw.close)  # a stream dropped unread still closes its file
        return stream

    def read_bytes(self, digest: str) -> bytes:
        """The whole plaintext of a blob; for small blobs only."""
        return b"".join(self.open(digest))

    def exists(self, digest: str) -> bool:
        """Whether blob ``digest`` is stored (``False`` for a malformed digest)."""
        if not _DIGEST.fullmatch(digest):
            return False
        return bool(self._fs.exists(self._object_path(digest)))

    def digests(self) -> Iterator[str]:
        """The digests of all stored blobs, in sorted order."""
        for path in self._find("objects"):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            # Skip anything that is not a blob at its proper place (e.g. a stray editor file).
            if _DIGEST.fullmatch(name) and path.endswith(f"{name[:2]}/{name[2:4]}/{name}"):
                yield name

    def delete(self, digest: str) -> None:
        """Remove blob ``digest``; nothing happens when it is absent."""
        self._remove(self._object_path(digest))

    def clean_temp(self, older_than_s: float = 3600.0) -> int:
        """Remove temp objects left by writers that crashed; returns how many were removed.

        Several control planes may share one store, so a temp object goes only when its writer
        is known to be gone: it names its host and process, and a process of this host that no
        longer runs writes nothing more. Any other temp object goes once untouched for
        ``older_than_s`` (a live writer appends to its own every few seconds).
        """
        now = time.time()
        stale = [
            p
            for p in self._find("tmp")
            if _writer_gone(p.rsplit("/", 1)[-1]) or now - self._mtime(p) >= older_than_s
        ]
        for path in stale:
            self._remove(path)
        return len(stale)

    def _mtime(self, path: str) -> float:
        try:
            info = self._fs.info(path)
        except FileNotFoundError:
            return time.time()
        stamp = info.get("mtime") or info.get("LastModified") or info.get("created")
        if hasattr(stamp, "timestamp"):
            return float(stamp.timestamp())
        return float(stamp) if stamp is not None else 0.0

    def _path(self, *parts: str) -> str:
        return "/".join((self._root, *parts))

    def _object_path(self, digest: str) -> str:
        # Validate before any path is built: the digest often comes from a request.
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise NotFound(
                f"{digest!r} is not a blob digest; a digest is 64 lowercase hex characters",
                fix="pass the digest returned when the blob was stored",
            )
        return self._path("objects", digest[:2], digest[2:4], digest)

    def _not_found(self, digest: str) -> NotFound:
        return NotFound(
            f"no blob {digest} in {self._url}",
            fix="check the digest, or store the data again",
        )

    def _find(self, sub: str) -> list[str]:
        try:
            return sorted(self._fs.find(self._path(sub)))
        except FileNotFoundError:
            return []

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(path)

    def _open_write(self, path: str) -> IO[bytes]:
        if self._local:
            return open(path, "wb")  # BlobWriter owns and closes it
        # s3fs buffers one multipart part (default 50 MiB) before upload: memory stays flat.
        f: IO[bytes] = self._fs.open(path, "wb")
        return f

    def _close_write(self, f: IO[bytes]) -> None:
        if self._local:
            f.flush()
            os.fsync(f.fileno())
        f.close()

    def _abort_write(self, f: IO[bytes]) -> None:
        remote: Any = f
        if self._local or not callable(getattr(remote, "discard", None)):
            f.close()
            return
        # s3fs: abort the multipart upload instead of completing a half blob only to delete it.
        remote.discard()
        remote.closed = True  # close() would now try to flush the discarded buffer

    def _publish(self, tmp: str, final: str) -> None:
        """Move a finished temp object to its final name, or drop it if that exists."""
        if self._fs.exists(final):
            self._remove(tmp)  # same digest, same content: dedup
            return
        if not self._local:
            self._fs.mv(tmp, final)  # S3: copy then delete; the copy appears whole or not at all
            return
        leaf = os.path.dirname(final)
        new_dirs = not os.path.isdir(leaf)
        os.makedirs(leaf, exist_ok=True)
        os.replace(tmp, final)  # atomic rename on one filesystem
        _fsync_dir(leaf)
        if new_dirs:
            _fsync_dir(os.path.dirname(leaf))
            _fsync_dir(self._path("objects"))

    def _open_raw(self, digest: str, path: str) -> IO[bytes]:
        try:
            if self._local:
                return open(path, "rb")
            # 4 MiB per ranged GET: few requests, and the read-ahead cache stays small.
            f: IO[bytes] = self._fs.open(path, "rb", block_size=4 * CHUNK)
            return f
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def _raw_chunks(self, f: IO[bytes]) -> Iterator[bytes]:
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    def _read(self, digest: str, f: IO[bytes]) -> Iterator[bytes]:
        raw = self._raw_chunks(f)
        name = f"blob {digest}"
        plain = raw if self._key is None else decrypt_stream(self._key, raw, name=name)
        h = hashlib.sha256()
        for chunk in plain:
            h.update(chunk)
            yield chunk
        if h.hexdigest() != digest:
            raise BlobIntegrityError(
                f"{name} has sha256 {h.hexdigest()} when read back: it was altered or truncated",
                fix="restore it from a backup or upload it again; the stored bytes are not usable",
            )


class BlobWriter:
    """Streams one blob into a temp object; ``commit()`` names it by its digest.

    Leaving the ``with`` block without ``commit()``, or with an exception, removes the temp
    object and stores nothing.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        # Named by host and process, so a restart can tell its own crashed writes from the live
        # writes of another control plane sharing the store (clean_temp).
        self._tmp = store._path("tmp", f"{socket.gethostname()}@{os.getpid()}@{uuid.uuid4().hex}")
        self._file: IO[bytes] | None = None  # opened on first use: an unused writer leaves nothing
        self._hash = hashlib.sha256()
        self._size = 0
        self._encryptor = None if store._key is None else Encryptor(store._key)
        self._info: BlobInfo | None = None
        self._done = False

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._done:
            self.abort()

    def _out(self) -> IO[bytes]:
        if self._done or self._info is not None:
            raise ValueError("this BlobWriter is finished; start another with store.writer()")
        if self._file is None:
            self._file = self._store._open_write(self._tmp)
        return self._file

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append plaintext; any size, written through in chunks of at most 1 MiB."""
        out = self._out()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), CHUNK):
            piece = view[start : start + CHUNK]
            self._hash.update(piece)
            if self._encryptor is None:
                out.write(piece)
            else:
                for sealed in self._encryptor.update(piece):
                    out.write(sealed)
        self._size += len(view)

    @property
    def size(self) -> int:
        """Plaintext bytes written so far."""
        return self._size

    def finish(self) -> BlobInfo:
        """Finish writing: the temp object is complete and its digest known, but it is not yet
        at its final name (:meth:`publish` puts it there). Big blobs are written up to here
        outside any lock; only the publish needs one (``lepton.control.content``)."""
        if self._info is not None:
            return self._info
        out = self._out()
        if self._encryptor is not None:
            for sealed in self._encryptor.finish():
                out.write(sealed)
        self._store._close_write(out)
        self._file = None
        self._info = BlobInfo(digest=self._hash.hexdigest(), size=self._size)
        return self._info

    def publish(self) -> BlobInfo:
        """Move the finished blob to its final name (dropping it when that exists already)."""
        info = self.finish()
        if not self._done:
            self._store._publish(self._tmp, self._store._object_path(info.digest))
            self._done = True
        return info

    def commit(self) -> BlobInfo:
        """Finish the blob and move it to its final name; returns its digest and size."""
        return self.publish()

    def abort(self) -> None:
        """Drop everything written so far; the store is left as it was."""
        self._done = True
        if self._file is not None:
            # Best effort: on a failing disk or network, clean_temp() removes the rest later.
            with contextlib.suppress(Exception):
                self._store._abort_write(self._file)
            self._file = None
        with contextlib.suppress(Exception):
            self._store._remove(self._tmp)
