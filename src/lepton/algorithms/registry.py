"""The catalogue of built-in algorithms, by name.

Each entry names its class by import path and declares its family, tasks and input kinds here,
so listing and matching algorithms to data import nothing heavy: a family module is imported
when its algorithm is first used, and PyTorch (which the nets need) only then.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lepton.algorithms.base import Algorithm, InputKind, Param, Task
from lepton.errors import InvalidRequest

__all__ = [
    "ALGORITHMS",
    "CATALOGUE",
    "AlgorithmInfo",
    "Entry",
    "check_fits",
    "describe",
    "get_algorithm",
    "list_algorithms",
    "suitable",
]

C, R, F = Task.classification, Task.regression, Task.forecasting


@dataclass(frozen=True)
class Entry:
    """Where an algorithm lives and what it fits, declared without importing it."""

    name: str
    target: str
    """``module:Class``."""
    family: str
    tasks: frozenset[Task]
    kinds: frozenset[InputKind]
    summary: str
    torch: bool = False
    """Its module imports PyTorch: listing leaves its parameters out rather than import it."""
    slow: bool = False
    """AutoML leaves it out of automatic candidates when the budget is small."""


def _entry(
    name: str,
    target: str,
    family: str,
    tasks: set[Task],
    kinds: set[InputKind],
    summary: str,
    **flags: bool,
) -> Entry:
    return Entry(name, target, family, frozenset(tasks), frozenset(kinds), summary, **flags)


# fmt: off
_M = "lepton.algorithms."
_TAB, _IMG, _SEQ, _TXT = InputKind.tabular, InputKind.image, InputKind.sequence, InputKind.text
CATALOGUE: Mapping[str, Entry] = {
    e.name: e
    for e in (
        _entry("logistic_regression", _M + "linear:LogisticRegression", "linear", {C}, {_TAB},
               "Logistic regression on scaled, one-hot encoded features."),
        _entry("linear_regression", _M + "linear:LinearRegression", "linear", {R}, {_TAB},
               "Ridge (L2-regularised least squares) on scaled features."),
        _entry("random_forest", _M + "forest:RandomForest", "forest", {C, R}, {_TAB},
               "Random forest of decision trees; robust defaults, little tuning."),
        _entry("hist_gradient_boosting", _M + "boosting:HistGradientBoosting", "boosting", {C, R},
               {_TAB}, "Histogram gradient boosting; usually the strongest on tables."),
        _entry("mlp", _M + "mlp:MLP", "neural", {C, R}, {_TAB},
               "Multilayer perceptron (PyTorch) on scaled, one-hot encoded features.",
               torch=True, slow=True),
        _entry("cnn", _M + "cnn:CNN", "neural", {C}, {_IMG},
               "Convolutional network (PyTorch) for image classification.", torch=True, slow=True),
        _entry("lstm", _M + "rnn:LSTMForecaster", "neural", {F}, {_SEQ},
               "LSTM forecaster (PyTorch) for a univariate series.", torch=True, slow=True),
        _entry("gru", _M + "rnn:GRUForecaster", "neural", {F}, {_SEQ},
               "GRU forecaster (PyTorch) for a univariate series.", torch=True, slow=True),
        _entry("tfidf_linear", _M + "text:TfidfLinear", "text", {C}, {_TXT},
               "TF-IDF word n-grams and logistic regression."),
        _entry("minilm_linear", _M + "text:MiniLMLinear", "text", {C}, {_TXT},
               "MiniLM sentence embeddings (offline) and logistic regression.", slow=True),
    )
}
# fmt: on


@dataclass(frozen=True)
class AlgorithmInfo:
    """What ``lepton algorithms list`` shows; ``params`` is None where reading them would
    import PyTorch (``describe`` reads them)."""

    name: str
    family: str
    tasks: list[str]
    kinds: list[str]
    summary: str
    params: Mapping[str, Param] | None


def _unknown(name: str) -> InvalidRequest:
    close = difflib.get_close_matches(name, list(CATALOGUE), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return InvalidRequest(
        f"no algorithm named {name!r}; algorithms are: " + ", ".join(CATALOGUE),
        fix=f"{hint}see them with: lepton algorithms list",
    )


def _class(entry: Entry) -> type[Algorithm]:
    module, _, attr = entry.target.partition(":")
    cls: type[Algorithm] = getattr(importlib.import_module(module), attr)
    return cls


def get_algorithm(name: str) -> Algorithm:
    """A fresh instance of the algorithm ``name`` (importing its module now)."""
    entry = CATALOGUE.get(name)
    if entry is None:
        raise _unknown(name)
    return _class(entry)()


def _info(entry: Entry, params: Mapping[str, Param] | None) -> AlgorithmInfo:
    return AlgorithmInfo(
        name=entry.name,
        family=entry.family,
        tasks=sorted(str(t) for t in entry.tasks),
        kinds=sorted(str(k) for k in entry.kinds),
        summary=entry.summary,
        params=params,
    )


def describe(name: str) -> AlgorithmInfo:
    """Everything about one algorithm, parameters included (may import PyTorch)."""
    if name not in CATALOGUE:
        raise _unknown(name)
    return _info(CATALOGUE[name], get_algorithm(name).params)


def list_algorithms() -> list[AlgorithmInfo]:
    """Every built-in algorithm; never imports PyTorch."""
    out = []
    for entry in CATALOGUE.values():
        loaded = entry.target.partition(":")[0] in sys.modules
        params = _class(entry).params if loaded or not entry.torch else None
        out.append(_info(entry, params))
    return out


def suitable(task: Task | str, kind: InputKind | str) -> list[str]:
    """Names of the algorithms that support ``task`` on ``kind`` inputs, in catalogue order."""
    t, k = Task(task), InputKind(kind)
    return [e.name for e in CATALOGUE.values() if t in e.tasks and k in e.kinds]


def check_fits(name: str, task: Task | str, kind: InputKind | str) -> None:
    """Raise :class:`InvalidRequest` unless algorithm ``name`` supports ``task`` on ``kind``."""
    entry = CATALOGUE.get(name)
    if entry is None:
        raise _unknown(name)
    t, k = Task(task), InputKind(kind)
    if t in entry.tasks and k in entry.kinds:
        return
    others = suitable(t, k)
    raise InvalidRequest(
        f"algorithm {name} does not support {k} {t}; algorithms that do: "
        + (", ".join(others) or "none"),
        fix=f"pick one of them, e.g. --algorithm {others[0]}" if others else "",
    )


class _Catalogue(Mapping[str, Algorithm]):
    """``ALGORITHMS[name]`` instantiates on demand; iterating lists names without imports."""

    def __getitem__(self, name: str) -> Algorithm:
        if name not in CATALOGUE:
            raise KeyError(name)
        return get_algorithm(name)

    def __contains__(self, name: Any) -> bool:
        return name in CATALOGUE

    def __iter__(self) -> Iterator[str]:
        return iter(CATALOGUE)

    def __len__(self) -> int:
        return len(CATALOGUE)


ALGORITHMS: Mapping[str, Algorithm] = _Catalogue()
"""Every built-in algorithm by name, instantiated lazily."""
