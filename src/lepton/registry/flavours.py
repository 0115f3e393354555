"""One way to load any registered model: :func:`load_model` turns an unpacked artifact folder
into a :class:`LoadedModel` with ``predict`` (and ``predict_proba`` for classifiers), whatever
produced it.

Flavours, told apart by the artifact's ``config.json``:

* **built-in** (``"algorithm"`` is set): the algorithm library's own ``load``: skops with the
  allow-list for scikit-learn families, safetensors plus JSON for nets.
* **sklearn** (a model brought by the user, ``model.skops``): skops with the same allow-list.
* **onnx** (``model.onnx``; PyTorch modules are exported to it at registration): ONNX Runtime,
  which runs the graph as data. A module's architecture is the user's Python code, which a
  serving replica does not have and must not import, so safetensors alone could not rebuild it.
  Keras 3 models are exported to it as well.
* **keras** (``model.keras``, where a Keras model could not be exported to ONNX): Keras's own
  loader in safe mode, which builds layers from their config and refuses code in the file.
* **xgboost** (``model.json``) and **lightgbm** (``model.txt``): each library's own model
  format, parsed as data, behind the scikit-learn wrapper's classes.
* **torch** weights without an architecture (artifacts of older releases) cannot be loaded here
  and say so.

Nothing is unpickled: every path above refuses a file that looks like a pickle before reading it.
The serving runtime and ``Client.models.load`` both call :func:`load_model`; its interface is
stable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest

__all__ = ["SIGNATURE_FILE", "LoadedModel", "as_input", "load_model"]

SIGNATURE_FILE = "signature.json"
"""The signature stored beside the model, so an artifact folder is self-describing."""


@dataclass
class LoadedModel:
    """A model ready to predict, whatever its flavour.

    Attributes:
        flavour: ``sklearn``, ``torch`` (built-in nets), ``onnx``, ``keras``, ``xgboost`` or
            ``lightgbm``.
        algorithm: the built-in algorithm's name, or the user's class for models brought in.
        task: ``classification``, ``regression`` or ``forecasting``.
        classes: the class labels in probability-column order, or None.
        signature: ``{"inputs": [...] | {"shape", "dtype"}, "outputs": {...}}`` as registered.
    """

    flavour: str
    algorithm: str
    task: str
    classes: list[Any] | None
    signature: dict[str, Any]
    _predict: Callable[[Any], np.ndarray] = field(repr=False)
    _proba: Callable[[Any], np.ndarray | None] | None = field(default=None, repr=False)

    @property
    def is_classifier(self) -> bool:
        """Whether :meth:`predict_proba` answers."""
        return self._proba is not None and self.task == "classification"

    def predict(self, X: Any) -> np.ndarray:
        """Labels (classification) or values (regression) for each row of ``X``: a DataFrame,
        a list of row dicts, a dict of columns, or an array in the signature's column order."""
        return np.asarray(self._predict(as_input(X, self.signature, self.flavour)))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of :attr:`classes`.

        Raises:
            InvalidRequest: the model is not a classifier or has no probabilities.
        """
        if self._proba is None or self.task != "classification":
            raise InvalidRequest(
                f"this {self.task} model ({self.algorithm}) has no class probabilities",
                fix="call predict instead",
            )
        proba = self._proba(as_input(X, self.signature, self.flavour))
        if proba is None:
            raise InvalidRequest(
                f"{self.algorithm} gives labels only, no probabilities", fix="call predict"
            )
        return np.asarray(proba)


def load_model(directory: Path, signature: dict[str, Any] | None = None) -> LoadedModel:
    """Load an unpacked artifact folder (see :func:`lepton.registry.artifacts.unpack`).

    Args:
        directory: the folder holding ``config.json`` and the model files.
        signature: the registered signature; defaults to the folder's ``signature.json``.

    Raises:
        InvalidRequest: the folder is not a model Lepton can load safely.
    """
    from lepton.registry.artifacts import read_config

    config = read_config(directory)
    if signature is None:
        path = directory / SIGNATURE_FILE
        signature = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if "algorithm" in config:
        return _builtin(directory, config, signature)
    flavour = config.get("flavour")
    if flavour == "sklearn":
        return _sklearn(directory, config, signature)
    if flavour == "onnx":
        return _onnx(directory, config, signature)
    if flavour == "keras":
        return _keras(directory, config, signature)
    if flavour in ("xgboost", "lightgbm"):
        return _boosted(directory, config, signature, str(flavour))
    if flavour == "torch":
        raise InvalidRequest(
            f"this artifact holds PyTorch weights of {config.get('class', 'a module')} without "
            "its architecture, which is the author's code",
            fix="register the module with client.models.register(name, module, signature=...) "
            "so it is exported to ONNX, or load the weights into your own module with safetensors",
        )
    raise InvalidRequest(
        f"config.json names flavour {flavour!r}; Lepton loads built-in, sklearn, onnx, keras, "
        "xgboost and lightgbm models",
        fix="register the model through Lepton",
    )


def _builtin(directory: Path, config: dict[str, Any], signature: dict[str, Any]) -> LoadedModel:
    from lepton.algorithms.registry import get_algorithm

    model = get_algorithm(str(config["algorithm"])).load(directory)
    outputs = signature.get("outputs", {})
    task = str(getattr(model, "task", outputs.get("task", "")))
    return LoadedModel(
        flavour=model.flavour,
        algorithm=str(config["algorithm"]),
        task=task,
        classes=list(model.classes) if model.classes is not None else None,
        signature=signature,
        _predict=model.predict,
        _proba=model.predict_proba if task == "classification" else None,
    )


def _skip_torch_array_api() -> None:
    """Keep scikit-learn's array-API adapter for PyTorch from loading, unless torch already is.

    Importing skops walks every scikit-learn module (``all_estimators``) to list the types it
    trusts, and that walk imports the adapter, which imports torch: 1.4 s of a replica's 3.2 s
    of imports on this machine, for a model that never touches a tensor. The adapter is only
    used with ``array_api_dispatch`` on torch tensors, which Lepton never enables; without it
    the walk goes on (skops skips modules that cannot be imported).
    """
    adapter = "sklearn.externals.array_api_compat.torch"
    if "torch" not in sys.modules and adapter not in sys.modules:
        # None in sys.modules makes ``import`` raise ImportError (the import system's rule).
        sys.modules[adapter] = None  # type: ignore[assignment]


def _sklearn(directory: Path, config: dict[str, Any], signature: dict[str, Any]) -> LoadedModel:
    _skip_torch_array_api()
    from lepton.algorithms.persist import load_sklearn

    estimator = load_sklearn(directory / "model.skops")
    classes = [_plain(c) for c in estimator.classes_] if hasattr(estimator, "classes_") else None
    task = "classification" if classes is not None else "regression"
    has_proba = classes is not None and hasattr(estimator, "predict_proba")
    return LoadedModel(
        flavour="sklearn",
        algorithm=str(config.get("class", type(estimator).__name__)),
        task=task,
        classes=classes,
        signature=signature,
        _predict=estimator.predict,
        _proba=estimator.predict_proba if has_proba else None,
    )


def _onnx(directory: Path, config: dict[str, Any], signature: dict[str, Any]) -> LoadedModel:
    session = onnx_session(directory / "model.onnx")
    input_name = session.get_inputs()[0].name

    def scores(X: Any) -> np.ndarray:
        result = session.run(None, {input_name: np.asarray(X, dtype=np.float32)})[0]
        return np.asarray(result)

    return _scored("onnx", config, signature, scores)


def _keras(directory: Path, config: dict[str, Any], signature: dict[str, Any]) -> LoadedModel:
    import os

    from lepton.registry.artifacts import check_safe_file

    path = directory / "model.keras"
    if not path.is_file():
        raise InvalidRequest(f"the artifact has no {path.name}", fix="register the model again")
    with path.open("rb") as f:
        check_safe_file(path.name, f.read(16))
    os.environ.setdefault("KERAS_BACKEND", "torch")  # the backend Lepton installs
    try:
        import keras
    except ImportError:
        raise InvalidRequest(
            "this model was saved in Keras's format and Keras is not installed here",
            fix="pip install 'lepton[keras]' where the model is loaded or served",
        ) from None
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # a custom layer this process does not know, or a damaged file
        raise InvalidRequest(
            f"Keras could not load {path.name} in safe mode ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]})",
            fix="use only Keras's own layers, or export the model to ONNX and register the .onnx",
        ) from None

    def scores(X: Any) -> np.ndarray:
        return np.asarray(model.predict(np.asarray(X, dtype=np.float32), verbose=0))

    return _scored("keras", config, signature, scores)


def _scored(
    flavour: str,
    config: dict[str, Any],
    signature: dict[str, Any],
    scores: Callable[[Any], np.ndarray],
) -> LoadedModel:
    """A net that returns scores per row: logits or probabilities per class, or one value (one
    probability of the second class when ``config["output"]`` is ``sigmoid``)."""
    classes = signature.get("outputs", {}).get("classes")
    task = "classification" if classes else str(config.get("task", "regression"))
    sigmoid = config.get("output") == "sigmoid"

    def proba(X: Any) -> np.ndarray:
        out = scores(X)
        if sigmoid:
            p = out.reshape(len(out), -1)[:, :1].astype(np.float64)
            return np.hstack([1 - p, p])
        return _probabilities(out)

    def predict(X: Any) -> np.ndarray:
        if classes:
            return np.asarray(np.asarray(classes, dtype=object)[np.argmax(proba(X), axis=1)])
        out = scores(X)
        flat = out.reshape(len(out), -1)[:, 0] if out.ndim > 1 and out.shape[1] == 1 else out
        return np.asarray(flat)

    return LoadedModel(
        flavour=flavour,
        algorithm=str(config.get("class", flavour)),
        task=task,
        classes=list(classes) if classes else None,
        signature=signature,
        _predict=predict,
        _proba=proba if classes else None,
    )


def _boosted(
    directory: Path, config: dict[str, Any], signature: dict[str, Any], library: str
) -> LoadedModel:
    """XGBoost's JSON or LightGBM's text model, behind the classes of its signature."""
    from lepton.registry.artifacts import check_safe_file

    classes = signature.get("outputs", {}).get("classes")
    classifier = config.get("estimator") == "classifier" and bool(classes)
    path = directory / ("model.json" if library == "xgboost" else "model.txt")
    if not path.is_file():
        raise InvalidRequest(f"the artifact has no {path.name}", fix="register the model again")
    with path.open("rb") as f:
        check_safe_file(path.name, f.read(16))
    try:
        module = __import__(library)
    except ImportError:
        raise InvalidRequest(
            f"this is a {library} model and {library} is not installed here",
            fix="pip install 'lepton[boosting]' where the model is loaded or served",
        ) from None
    if library == "xgboost":
        estimator = module.XGBClassifier() if classifier else module.XGBRegressor()
        estimator.load_model(str(path))
        raw_proba = estimator.predict_proba if classifier else None
        values = estimator.predict
    else:
        booster = module.Booster(model_file=str(path))
        raw_proba = values = booster.predict

    def proba(X: Any) -> np.ndarray:
        assert raw_proba is not None
        p = np.asarray(raw_proba(X), dtype=np.float64)
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p

    def predict(X: Any) -> np.ndarray:
        if classifier:
            return np.asarray(np.asarray(classes, dtype=object)[np.argmax(proba(X), axis=1)])
        return np.asarray(values(X))

    return LoadedModel(
        flavour=library,
        algorithm=str(config.get("class", library)),
        task="classification" if classifier else "regression",
        classes=list(classes) if classifier else None,
        signature=signature,
        _predict=predict,
        _proba=proba if classifier else None,
    )


def onnx_session(path: Path) -> Any:
    """An ONNX Runtime session on CPU for a checked ``.onnx`` file."""
    import onnxruntime as ort

    from lepton.registry.artifacts import check_safe_file

    if not path.is_file():
        raise InvalidRequest(f"the artifact has no {path.name}", fix="register the model again")
    with path.open("rb") as f:
        check_safe_file(path.name, f.read(16))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2  # the machines these run on have 2 cores to share
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise InvalidRequest(
            f"{path.name} is not a valid ONNX model ({str(exc).splitlines()[0][:200]})",
            fix="export the model again (torch.onnx.export or skl2onnx)",
        ) from None


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities stay as they are; anything else is taken as logits."""
    scores = scores.astype(np.float64)
    if scores.ndim == 2 and (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def input_columns(signature: dict[str, Any]) -> list[str] | None:
    """The named input columns of a tabular signature, or None."""
    inputs = signature.get("inputs")
    if isinstance(inputs, list) and all(isinstance(c, dict) and "name" in c for c in inputs):
        return [str(c["name"]) for c in inputs]
    return None


def as_input(X: Any, signature: dict[str, Any], flavour: str) -> Any:
    """``X`` in the form the model takes: a DataFrame in the signature's column order for named
    tabular inputs (an array for ONNX), else an array of the signature's shape.

    Raises:
        InvalidRequest: a column is missing, or the shape does not match.
    """
    import pandas as pd

    columns = input_columns(signature)
    if columns is not None and signature.get("inputs") and _is_tabular(X):
        frame = _frame(X, columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InvalidRequest(
                f"the input lacks column {missing[0]!r}; the model takes: {', '.join(columns)}",
                fix="send every input column named in the model's signature",
            )
        frame = frame[columns]
        return frame.to_numpy(dtype=np.float32) if flavour in ("onnx", "keras") else frame
    shape = _shape(signature)
    if shape is None or isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X, dtype=np.dtype(str(signature["inputs"].get("dtype", "float32"))))
    if array.shape[1:] != tuple(shape):
        if array.shape == tuple(shape):  # one example without its batch axis
            return array[None]
        raise InvalidRequest(
            f"the input has shape {list(array.shape)}; the model takes [N, "
            f"{', '.join(map(str, shape))}]",
            fix="send a batch of rows of the signature's shape",
        )
    return array


def _shape(signature: dict[str, Any]) -> list[int] | None:
    inputs = signature.get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get("shape"), list):
        return [int(d) for d in inputs["shape"]]
    return None


def _is_tabular(X: Any) -> bool:
    import pandas as pd

    if isinstance(X, (pd.DataFrame, dict)):
        return True
    if isinstance(X, Sequence) and not isinstance(X, str) and X and isinstance(X[0], dict):
        return True
    array = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    return array.ndim == 2


def _frame(X: Any, columns: list[str]) -> Any:
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, dict):
        return pd.DataFrame(X)
    if isinstance(X, Sequence) and X and isinstance(X[0], dict):
        return pd.DataFrame(list(X))
    array = np.asarray(X, dtype=object)
    if array.shape[1] != len(columns):
        raise InvalidRequest(
            f"each input row has {array.shape[1]} values; the model takes {len(columns)}: "
            f"{', '.join(columns)}",
            fix="send one value per signature column, in that order, or send named columns",
        )
    frame = pd.DataFrame(array, columns=columns)
    return frame.infer_objects()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
