"""Session-wide tuning that keeps the unit folder fast (STYLE 10: under 60 s on 2 cores).

Nothing here changes what a test sees: the collector still frees every cycle made during a test,
and FastAPI still builds every route of every app, with pydantic adapters equal to the ones it
would have built again.
"""

from __future__ import annotations

import gc
from collections.abc import Generator, Iterator
from typing import Any

import pytest


def _freeze() -> None:
    gc.collect()
    gc.freeze()


# Imports (pandas, sklearn, torch) leave over a million long-lived objects, and every full
# collection walked them again: 37 collections took 21 s of a 160 s run. Freezing what is alive
# when collection ends, and again after each module (once its lazy imports and module fixtures
# have settled), took that to ~7 s. Garbage is collected before each freeze; only live objects
# are frozen, and they are unfrozen at the end, so the last collection sees everything again.
def pytest_collection_finish(session: pytest.Session) -> None:
    _freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    result = yield
    if nextitem is not None and nextitem.path != item.path:
        _freeze()
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    gc.unfreeze()


@pytest.fixture(scope="session", autouse=True)
def _shared_field_adapters() -> Iterator[None]:
    """Build the pydantic adapter of each FastAPI field once per session, not once per app.

    FastAPI builds an app's routes on its first request: ~660 fields, 478 of them the
    ``ErrorBody`` of a route's error responses and 82 distinct, each a pydantic ``TypeAdapter``
    (~0.3 ms). ~200 tests make an app of their own, so that was ~15 s of the folder.
    A field's adapter depends only on its mode, type, metadata and attributes; those are the
    key. A field whose attributes cannot be hashed (a list of examples) builds its own.
    """
    try:
        from fastapi._compat import v2
    except ImportError:  # another FastAPI: no sharing, every app builds its own adapters
        yield
        return
    build = v2.ModelField.__post_init__
    built: dict[tuple[Any, ...], dict[str, Any]] = {}

    def post_init(field: Any) -> None:
        key = _adapter_key(v2, field)
        if key is None:
            build(field)
        elif key in built:
            vars(field).update(built[key])
        else:
            before = set(vars(field))
            build(field)
            built[key] = {k: v for k, v in vars(field).items() if k not in before}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(v2.ModelField, "__post_init__", post_init)
        yield


def _adapter_key(v2: Any, field: Any) -> tuple[Any, ...] | None:
    """What ``field`` builds its adapter from, as a key; None when it has no hashable key."""
    if field.config is not None:
        return None
    spec = v2.asdict(field.field_info)
    # Type and repr beside each value: 1, 1.0 and True are equal keys but different defaults.
    attributes = tuple((k, type(v), repr(v), v) for k, v in sorted(spec["attributes"].items()))
    key = (field.mode, spec["annotation"], tuple(spec["metadata"]), attributes)
    try:
        hash(key)
    except TypeError:
        return None
    return key
