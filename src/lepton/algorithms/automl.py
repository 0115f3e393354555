"""AutoML: search algorithms and their hyperparameters with Optuna within a time budget.

One study covers every candidate: a trial picks the algorithm (a categorical choice) and then
that algorithm's own parameters, named ``<algorithm>.<param>`` so the spaces never collide.
Each candidate's defaults run first, so every candidate is on the leaderboard; TPE then searches
until the budget is spent. The best configuration is refitted on train + validation and scored
on test.

The budget bounds the search; the final refit comes on top of it (about one trial more). A trial
that starts before the deadline runs to its next stage boundary (the tree and boosting models and
the nets check ``should_stop`` between stages or epochs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lepton.algorithms.base import Callbacks, Model, ParamValue, Task, TrainData
from lepton.algorithms.metrics import evaluate, primary_metric
from lepton.algorithms.registry import CATALOGUE, check_fits, get_algorithm, suitable
from lepton.errors import InvalidRequest

__all__ = ["SLOW_BUDGET_S", "AutoMLResult", "run_automl"]

SLOW_BUDGET_S = 60.0
"""Below this budget, automatic candidates leave out the slow ones (the nets, MiniLM) when a
fast one fits: one epoch of a net can take longer than the whole budget."""

VALIDATION_FRACTION = 0.2
"""Held out of train for scoring trials when the data come without a validation split."""


@dataclass
class AutoMLResult:
    """The winner refitted on train + validation, and how every trial scored."""

    best_algorithm: str
    best_params: dict[str, ParamValue]
    model: Model
    leaderboard: list[dict[str, Any]]
    """One row per trial, best first: ``trial, algorithm, params, metric, val_score,
    val_metrics, fit_seconds`` (and ``error`` for a trial that failed; those come last)."""
    test_metrics: dict[str, float]
    metric: str = ""
    higher_is_better: bool = True


@dataclass
class _Quiet:
    """A trial's callbacks: its per-epoch metrics stay out of the job's stream (the job logs
    one point per trial); it stops at the job's stop or its own deadline."""

    parent: Callbacks
    deadline: float | None = None
    resume_state: bytes | None = None

    def log(self, step: int, **metrics: float) -> None:
        pass

    def checkpoint(self, state: bytes) -> None:
        pass

    def should_stop(self) -> bool:
        late = self.deadline is not None and time.monotonic() >= self.deadline
        return late or self.parent.should_stop()


def _candidates(data: TrainData, given: list[str] | None, budget_s: float) -> list[str]:
    if given:
        for name in given:
            check_fits(name, data.task, data.kind)
        return list(dict.fromkeys(given))
    names = suitable(data.task, data.kind)
    if not names:
        raise InvalidRequest(
            f"no built-in algorithm supports {data.kind} {data.task}",
            fix="lepton algorithms lists what each algorithm takes; or train with a script job",
        )
    fast = [n for n in names if not CATALOGUE[n].slow]
    rows = len(data.X_train) + (0 if data.X_val is None else len(data.X_val))
    # Small data is scored by cross-validation, which the slow nets skip: their one-split score
    # would not be comparable, and on a few thousand rows they rarely win anyway.
    small = data.task != Task.forecasting and rows <= CV_MAX_ROWS
    return fast if (budget_s < SLOW_BUDGET_S or small) and fast else names


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def _join(a: Any, b: Any) -> Any:
    if hasattr(a, "iloc"):
        import pandas as pd

        return pd.concat([a, b])
    return np.concatenate([np.asarray(a), np.asarray(b)])


def _with_validation(data: TrainData, seed: int) -> TrainData:
    """``data`` itself when it has a validation split; else one carved out of train."""
    if data.X_val is not None and len(data.X_val) > 0:
        return data
    n = len(data.X_train)
    cut = max(1, int(n * VALIDATION_FRACTION))
    if data.task == Task.forecasting:  # the validation stretch follows the training one
        series = np.asarray(data.X_train)
        return replace(data, X_train=series[:-cut], X_val=series[-cut:], y_val=None)
    from sklearn.model_selection import train_test_split

    rows = np.arange(n)
    y = np.asarray(data.y_train)
    try:
        stratify = y if data.task == Task.classification else None
        train, val = train_test_split(rows, test_size=cut, random_state=seed, stratify=stratify)
    except ValueError:  # a class with one row cannot be stratified
        train, val = train_test_split(rows, test_size=cut, random_state=seed)
    X = data.X_train
    return replace(
        data, X_train=_take(X, train), y_train=y[train], X_val=_take(X, val), y_val=y[val]
    )


# Up to this many train + validation rows, fast candidates are scored by 5-fold
# cross-validation rather than on the one validation split: with ~60 validation rows (breast
# cancer's 10%) one misclassified row moves accuracy by 1.7 points, more than the gap between
# the candidates, so a single split picks by noise.
CV_MAX_ROWS = 5_000
CV_FOLDS = 5


def _folds(search: TrainData, seed: int) -> list[tuple[TrainData, Any]] | None:
    """Cross-validation folds over train + validation, or None where they do not apply."""
    if search.task == Task.forecasting or search.y_train is None:
        return None
    X = _join(search.X_train, search.X_val)
    y = np.concatenate([np.asarray(search.y_train), np.asarray(search.y_val)])
    if len(y) > CV_MAX_ROWS:
        return None
    from sklearn.model_selection import KFold, StratifiedKFold

    if (
        search.task == Task.classification
        and np.unique(y.astype(str), return_counts=True)[1].min() >= CV_FOLDS
    ):
        splitter: Any = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
    else:
        splitter = KFold(CV_FOLDS, shuffle=True, random_state=seed)
    return [
        (
            replace(search, X_train=_take(X, tr), y_train=y[tr], X_val=_take(X, va), y_val=y[va]),
            va,
        )
        for tr, va in splitter.split(np.zeros(len(y)), y.astype(str))
    ]


def _rank(row: dict[str, Any], higher: bool) -> tuple[bool, float, int]:
    """Sort key, best first; failed trials last. A tie goes to the earlier trial, so a default
    beats a tuned configuration that only matches it: on small validation sets ties are common
    (57 rows of breast cancer: a dozen configurations at 56 right) and the search, not the
    default, is what overfits the validation split."""
    score = row["val_score"]
    if score is None:
        return True, 0.0, row["trial"]
    return False, -score if higher else score, row["trial"]


def _cross_validate(
    algorithm: Any,
    folds: list[tuple[TrainData, Any]],
    params: dict[str, Any],
    callbacks: Callbacks,
    deadline: float,
    seed: int,
) -> dict[str, float]:
    """Mean of each metric over the folds."""
    totals: dict[str, list[float]] = {}
    for fold, _ in folds:
        model = algorithm.fit(fold, params, _Quiet(callbacks, deadline), seed=seed)
        for key, value in evaluate(model, fold.X_val, fold.y_val).items():
            totals.setdefault(key, []).append(value)
    return {k: float(np.mean(v)) for k, v in totals.items() if len(v) == len(folds)}


def run_automl(
    data: TrainData,
    *,
    time_budget_s: float,
    seed: int,
    callbacks: Callbacks,
    candidates: list[str] | None = None,
    device: str = "cpu",
    max_trials: int | None = None,
) -> AutoMLResult:
    """Search ``candidates`` (default: every algorithm suitable for the data) for the best model.

    Trials are reported as ``callbacks.log(step=trial, val_score=..., fit_seconds=...)`` and the
    test metrics, at the end, as ``test_<metric>``. ``max_trials`` caps the search (the default
    runs are always made).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = _candidates(data, candidates, time_budget_s)
    algorithms = {name: get_algorithm(name) for name in names}
    search = _with_validation(data, seed)
    folds = _folds(search, seed)
    metric, higher = primary_metric(data.task)
    start = time.monotonic()
    deadline = start + time_budget_s
    board: list[dict[str, Any]] = []
    defaults_left = [len(names)]

    def objective(trial: optuna.Trial) -> float:
        name = str(trial.suggest_categorical("algorithm", names))
        algorithm = algorithms[name]
        params = {p: spec.suggest(trial, f"{name}.{p}") for p, spec in algorithm.params.items()}
        now = time.monotonic()
        if defaults_left[0] > 0:  # a default run gets its share of what is left, at least
            trial_deadline = now + max(deadline - now, 0.0) / defaults_left[0]
            defaults_left[0] -= 1
        else:
            trial_deadline = deadline
        row: dict[str, Any] = {"trial": trial.number, "algorithm": name, "params": params}
        row |= {"metric": metric, "val_score": None, "val_metrics": {}, "fit_seconds": 0.0}
        board.append(row)
        try:
            if folds is not None and not CATALOGUE[name].slow:
                scores = _cross_validate(algorithm, folds, params, callbacks, trial_deadline, seed)
                row["cv_folds"] = len(folds)
            else:
                model = algorithm.fit(
                    search, params, _Quiet(callbacks, trial_deadline), seed=seed, device=device
                )
                scores = evaluate(
                    model, search.X_val, search.y_val, history=search.X_train, season=data.season
                )
            row["fit_seconds"] = time.monotonic() - now
        except Exception as exc:
            row["error"] = str(exc) or type(exc).__name__
            raise
        if metric not in scores:
            row["error"] = f"{metric} is not finite: the model predicts NaN or infinity"
            raise ValueError(row["error"])
        row["val_score"], row["val_metrics"] = scores[metric], scores
        callbacks.log(step=trial.number, val_score=scores[metric], fit_seconds=row["fit_seconds"])
        return scores[metric]

    def stop_when_told(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if callbacks.should_stop():
            study.stop()

    study = optuna.create_study(
        direction="maximize" if higher else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    for name in names:
        defaults = {f"{name}.{p}": spec.default for p, spec in algorithms[name].params.items()}
        study.enqueue_trial({"algorithm": name, **defaults})
    study.optimize(objective, n_trials=len(names), catch=(Exception,), callbacks=[stop_when_told])
    remaining = deadline - time.monotonic()
    more = None if max_trials is None else max(max_trials - len(names), 0)
    if remaining > 0 and more != 0 and not callbacks.should_stop():
        study.optimize(
            objective,
            n_trials=more,
            timeout=remaining,
            catch=(Exception,),
            callbacks=[stop_when_told],
        )

    scored = [r for r in board if r["val_score"] is not None]
    if not scored:
        errors = "; ".join(f"{r['algorithm']}: {r.get('error')}" for r in board)
        raise InvalidRequest(f"every AutoML trial failed ({errors})", fix="check the data")
    board.sort(key=lambda row: _rank(row, higher))
    best = board[0]
    algorithm = algorithms[best["algorithm"]]
    y_full = None if search.y_train is None else _join(search.y_train, search.y_val)
    full = replace(
        search, X_train=_join(search.X_train, search.X_val), y_train=y_full, X_val=None, y_val=None
    )
    model = algorithm.fit(full, best["params"], _Quiet(callbacks), seed=seed, device=device)
    test_metrics: dict[str, float] = {}
    if data.X_test is not None and len(data.X_test) > 0:
        test_metrics = evaluate(
            model, data.X_test, data.y_test, history=full.X_train, season=data.season
        )
        callbacks.log(step=len(board), **{f"test_{k}": v for k, v in test_metrics.items()})
    return AutoMLResult(
        best_algorithm=best["algorithm"],
        best_params=dict(algorithm.resolve(best["params"])),
        model=model,
        leaderboard=board,
        test_metrics=test_metrics,
        metric=metric,
        higher_is_better=higher,
    )
