"""The public API of ``import lepton`` is pinned: a change to it is a deliberate edit here."""

from __future__ import annotations

import lepton
from lepton import errors

PUBLIC = [
    "APIVersionMismatch",
    "AuthenticationError",
    "BlobIntegrityError",
    "Client",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "DataError",
    "File",
    "HandlerError",
    "HandlerTimeout",
    "InvalidRequest",
    "JPEGResponse",
    "LeptonError",
    "NotFound",
    "Overloaded",
    "PNGResponse",
    "PayloadTooLarge",
    "PermissionDenied",
    "Photon",
    "ServerError",
    "ServiceUnavailable",
    "StreamingResponse",
    "WAVResponse",
    "__version__",
    "load_arrays",
    "load_dataset",
    "log",
    "save_model",
]


def test_all_is_pinned_and_sorted() -> None:
    assert lepton.__all__ == PUBLIC
    assert sorted(lepton.__all__) == lepton.__all__


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from lepton import *", namespace)

    assert sorted(k for k in namespace if k != "__builtins__") == PUBLIC
    assert all(getattr(lepton, name) is namespace[name] for name in PUBLIC)


def test_version_is_a_string() -> None:
    assert isinstance(lepton.__version__, str)
    assert lepton.__version__.count(".") >= 2


def test_every_exported_error_is_one_tree_with_a_unique_code() -> None:
    not_errors = {"Client", "File", "Photon", *(n for n in PUBLIC if n.endswith("Response"))}
    classes = [getattr(lepton, n) for n in PUBLIC if n[0].isupper() and n not in not_errors]
    leaves = [cls for cls in classes if cls is not lepton.LeptonError]

    assert all(issubclass(cls, lepton.LeptonError) for cls in classes)
    assert len({cls.code for cls in leaves}) == len(leaves)
    # The SDK turns a wire code back into the class the server raised.
    assert all(errors.error_for_code(cls.code, 400) is cls for cls in leaves)
