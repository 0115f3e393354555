"""Bringing your own model: a scikit-learn estimator or pipeline, a PyTorch module, or an ONNX
file, written into a folder of safe files with its signature, ready to pack and register.

The signature is inferred where the object tells it (``feature_names_in_``, ``n_features_in_``,
``classes_``, the ONNX graph's input) and checked: the model is run on a zero row of the
signature, and a signature that it refuses, or that contradicts what the model says about
itself, is refused before anything is uploaded.

PyTorch modules are exported to ONNX (``torch.onnx.export`` on an example batch of the
signature's shape, with a dynamic batch axis). Safetensors would keep the weights but not the
architecture, which is the author's Python code: loading it would mean importing that code in
every serving replica. The ONNX graph is data, and ONNX Runtime runs it without any of it.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest
from lepton.registry.flavours import SIGNATURE_FILE, as_input, input_columns, load_model

__all__ = ["Prepared", "prepare_model"]

_ONNX_OPSET = 17  # supported by the pinned onnxruntime 1.2x and by the legacy torch exporter

Prepared = tuple[str, str, str, dict[str, Any]]
"""(flavour, algorithm, task, signature) of a prepared folder."""


def prepare_model(
    obj: Any,
    directory: Path,
    signature: dict[str, Any] | None,
    *,
    image_inputs: dict[str, Any] | None = None,
) -> Prepared:
    """Write ``obj`` into the empty folder ``directory`` in a safe format, with ``config.json``
    and ``signature.json``, and check that it loads back and predicts.

    ``image_inputs`` (``pixel_range``, ``channels``) says how the images it was trained on
    were given, kept in an image-shaped signature so an uploaded image is served the same way;
    the same keys in ``signature["inputs"]`` win.

    Raises:
        InvalidRequest: an unsupported object, an unfitted estimator, or a signature that does
            not match the model's real input.
    """
    if isinstance(obj, (str, PathLike)):
        prepared = _onnx_file(Path(obj), directory, signature)
    elif _is_keras_model(obj):  # before torch: on the torch backend a Keras model is a Module
        prepared = _keras(obj, directory, signature)
    elif _from(obj, "xgboost") or _from(obj, "lightgbm"):
        prepared = _boosting(obj, directory, signature)
    elif type(obj).__module__.startswith("sklearn") or _looks_like_sklearn(obj):
        prepared = _sklearn(obj, directory, signature)
    elif _is_torch_module(obj):
        prepared = _torch(obj, directory, signature)
    else:
        raise InvalidRequest(
            f"cannot register a {type(obj).__module__}.{type(obj).__name__}: {ACCEPTED}",
            fix="pass one of those, or export the model to ONNX yourself and pass the .onnx path",
        )
    sig = _image_layout(prepared[3], signature, image_inputs)
    prepared = (*prepared[:3], sig)
    (directory / SIGNATURE_FILE).write_text(json.dumps(sig, sort_keys=True), encoding="utf-8")
    _check_loads(directory, sig)
    return prepared


IMAGE_KEYS = ("pixel_range", "channels")


def _image_layout(
    sig: dict[str, Any], given: dict[str, Any] | None, image_inputs: dict[str, Any] | None
) -> dict[str, Any]:
    inputs = sig.get("inputs")
    if not isinstance(inputs, dict) or len(inputs.get("shape", ())) not in (2, 3):
        return sig
    asked = (given or {}).get("inputs")
    layout = {**(image_inputs or {}), **(asked if isinstance(asked, dict) else {})}
    kept = {k: layout[k] for k in IMAGE_KEYS if k in layout}
    span = kept.get("pixel_range")
    if span is not None and not (
        isinstance(span, list | tuple)
        and len(span) == 2
        and all(isinstance(v, int | float) for v in span)
        and span[0] < span[1]
    ):
        raise InvalidRequest(
            f"signature inputs.pixel_range is {span!r}",
            fix="give [black, white] as the model takes them, e.g. [0, 1] or [0, 255]",
        )
    if kept.get("channels", "last") not in ("first", "last"):
        raise InvalidRequest(
            f"signature inputs.channels is {kept['channels']!r}", fix="give first or last"
        )
    return {**sig, "inputs": {**inputs, **kept}} if kept else sig


ACCEPTED = (
    "Lepton takes scikit-learn estimators and pipelines, PyTorch nn.Modules, Keras 3 models, "
    "XGBoost and LightGBM scikit-learn models (XGBClassifier, LGBMRegressor, ...), and .onnx files"
)


def _from(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class (or a base) comes from ``package``."""
    return any(
        c.__module__ == package or c.__module__.startswith(package + ".") for c in type(obj).__mro__
    )


def _is_keras_model(obj: Any) -> bool:
    if not _from(obj, "keras"):
        return False
    import keras

    return isinstance(obj, keras.Model)


def _looks_like_sklearn(obj: Any) -> bool:
    return hasattr(obj, "fit") and hasattr(obj, "predict") and hasattr(obj, "get_params")


def _is_torch_module(obj: Any) -> bool:
    if not type(obj).__module__.startswith("torch") and "torch" not in _bases(obj):
        return False
    import torch

    return isinstance(obj, torch.nn.Module)


def _bases(obj: Any) -> str:
    return " ".join(c.__module__ for c in type(obj).__mro__)


def _mismatch(detail: str) -> InvalidRequest:
    return InvalidRequest(
        f"the signature does not match the model's real input: {detail}",
        fix="pass the signature the model was trained with, or leave it out to infer it",
    )


def _zero_row(signature: dict[str, Any]) -> Any:
    """One row of zeros (empty strings for string columns) in the signature's form."""
    inputs = signature.get("inputs")
    if isinstance(inputs, list):
        return [
            {
                str(c["name"]): "" if str(c.get("dtype", "")) in ("string", "object", "str") else 0
                for c in inputs
            }
        ]
    if isinstance(inputs, dict) and "shape" in inputs:
        return np.zeros(
            (1, *[int(d) for d in inputs["shape"]]), dtype=inputs.get("dtype", "float32")
        )
    raise InvalidRequest(
        "the signature has no inputs: give {'inputs': [{'name': ..., 'dtype': ...}, ...]} for "
        "named columns or {'inputs': {'shape': [...], 'dtype': 'float32'}}",
        fix="pass signature= with the model's inputs",
    )


# --- scikit-learn --------------------------------------------------------------------------


def _sklearn(obj: Any, directory: Path, given: dict[str, Any] | None) -> Prepared:
    from lepton.algorithms.persist import save_sklearn

    task, signature = _estimator_signature(obj, given)
    save_sklearn(obj, directory / "model.skops")
    cls = f"{type(obj).__module__}.{type(obj).__name__}"
    _write_config(directory, {"class": cls, "flavour": "sklearn"})
    return "sklearn", type(obj).__name__, task, signature


def _estimator_signature(obj: Any, given: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The task and checked signature of a fitted scikit-learn-style estimator."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(obj)
    except NotFittedError:
        raise InvalidRequest(
            f"the {type(obj).__name__} is not fitted", fix="call fit before registering it"
        ) from None
    except TypeError:  # not an estimator check_is_fitted knows: the zero-row run decides
        pass
    classes = [_plain(c) for c in obj.classes_] if hasattr(obj, "classes_") else None
    task = "classification" if classes is not None else "regression"
    names = [str(n) for n in obj.feature_names_in_] if hasattr(obj, "feature_names_in_") else None
    width = int(obj.n_features_in_) if hasattr(obj, "n_features_in_") else None
    if given is None:
        if names is not None:
            inputs: Any = [{"name": n} for n in names]
        elif width is not None:
            inputs = {"shape": [width], "dtype": "float64"}
        else:
            raise InvalidRequest(
                f"the {type(obj).__name__} does not say what input it takes",
                fix="pass signature={'inputs': [...]} when registering it",
            )
        signature: dict[str, Any] = {"inputs": inputs}
    else:
        signature = dict(given)
        columns = input_columns(signature)
        if names is not None and columns is not None and columns != names:
            raise _mismatch(f"it was fitted on columns {names}, the signature names {columns}")
        count = len(columns) if columns is not None else _width(signature)
        if width is not None and count is not None and count != width:
            raise _mismatch(f"it was fitted on {width} features, the signature has {count}")
    outputs = dict(signature.get("outputs", {}))
    if classes is not None:
        if "classes" in outputs and [str(c) for c in outputs["classes"]] != [
            str(c) for c in classes
        ]:
            raise _mismatch(f"its classes are {classes}, the signature says {outputs['classes']}")
        outputs["classes"] = classes
    outputs["task"] = task
    signature["outputs"] = outputs
    try:
        obj.predict(as_input(_zero_row(signature), signature, "sklearn"))
    except InvalidRequest:
        raise
    except Exception as exc:  # whatever the estimator raises on input it cannot take
        raise _mismatch(
            f"predicting one zero row failed with {type(exc).__name__}: {exc}"
        ) from None
    return task, signature


# --- XGBoost and LightGBM ------------------------------------------------------------------


def _boosting(obj: Any, directory: Path, given: dict[str, Any] | None) -> Prepared:
    """The scikit-learn wrappers of XGBoost and LightGBM, saved in each library's own format
    (XGBoost's JSON, LightGBM's text): data that the library parses, never a pickle."""
    library = "xgboost" if _from(obj, "xgboost") else "lightgbm"
    if not _looks_like_sklearn(obj):
        wrapper = (
            "XGBClassifier or XGBRegressor"
            if library == "xgboost"
            else "LGBMClassifier or LGBMRegressor"
        )
        raise InvalidRequest(
            f"a raw {library} {type(obj).__name__} does not say what it predicts: {ACCEPTED}",
            fix=f"train with the scikit-learn wrapper ({wrapper}) and register that",
        )
    task, signature = _estimator_signature(obj, given)
    if library == "xgboost":
        obj.save_model(str(directory / "model.json"))
    else:
        obj.booster_.save_model(str(directory / "model.txt"))
    estimator = "classifier" if task == "classification" else "regressor"
    cls = f"{type(obj).__module__}.{type(obj).__name__}"
    _write_config(directory, {"class": cls, "flavour": library, "estimator": estimator})
    return library, type(obj).__name__, task, signature


def _width(signature: dict[str, Any]) -> int | None:
    inputs = signature.get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get("shape"), list) and inputs["shape"]:
        return int(np.prod(inputs["shape"]))
    return None


# --- PyTorch -------------------------------------------------------------------------------


def _torch(module: Any, directory: Path, given: dict[str, Any] | None) -> Prepared:
    import torch

    signature: dict[str, Any] = (
        dict(given) if given is not None else {"inputs": _torch_inputs(module)}
    )
    shape = _net_shape(signature)
    example = torch.zeros((1, *shape), dtype=torch.float32)
    module = module.eval()
    try:
        with torch.no_grad():
            expected = module(example)
    except Exception as exc:  # the module refuses a batch of the signature's shape
        raise _mismatch(
            f"running the module on a zero batch of shape {[1, *shape]} failed with "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(expected, torch.Tensor) or expected.ndim != 2:
        raise InvalidRequest(
            "the module must return one tensor of shape [batch, outputs]",
            fix="wrap it so forward returns logits (classes) or one value per row (regression)",
        )
    task = _net_task(signature, int(expected.shape[1]))
    path = directory / "model.onnx"
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript (not a dependency); it still exports plain modules exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=_ONNX_OPSET,
        )
    cls = f"{type(module).__module__}.{type(module).__qualname__}"
    _write_config(directory, {"class": cls, "flavour": "onnx", "source": "torch", "task": task})
    _check_same(path, example.numpy(), expected.numpy())
    return "onnx", type(module).__name__, task, signature


def _net_shape(signature: dict[str, Any]) -> list[int]:
    """The per-row input shape of a net; named columns reach it as one float row in order.
    Normalises ``signature["inputs"]`` to float32."""
    columns = input_columns(signature)
    if columns is not None:
        signature["inputs"] = [{"name": c, "dtype": "float32"} for c in columns]
        return [len(columns)]
    if _width(signature) is None:
        raise _mismatch("give {'inputs': {'shape': [...], 'dtype': 'float32'}}")
    shape = [int(d) for d in signature["inputs"]["shape"]]
    signature["inputs"] = {"shape": shape, "dtype": "float32"}
    return shape


def _net_task(
    signature: dict[str, Any],
    width: int,
    *,
    inferred: list[Any] | None = None,
    sigmoid: bool = False,
) -> str:
    """Check a net's ``width`` output scores per row against the signature's classes (or the
    ``inferred`` ones) and record the task. ``sigmoid``: one probability of the second class."""
    outputs = dict(signature.get("outputs", {}))
    classes = outputs.get("classes") or inferred
    scores = 2 if sigmoid else width
    if classes is not None and len(classes) != scores:
        raise _mismatch(
            f"it returns {width} scores per row, the signature lists {len(classes)} classes"
        )
    if classes is None and width != 1:
        raise InvalidRequest(
            f"the model returns {width} scores per row but the signature names no classes",
            fix="pass signature={'inputs': ..., 'outputs': {'classes': [...]}} for a classifier",
        )
    task = "classification" if classes is not None else "regression"
    if classes is not None:
        outputs["classes"] = list(classes)
    outputs["task"] = task
    signature["outputs"] = outputs
    return task


# --- Keras 3 -------------------------------------------------------------------------------


def _keras(model: Any, directory: Path, given: dict[str, Any] | None) -> Prepared:
    """A Keras 3 model, exported to ONNX through Keras's own exporter (on the PyTorch backend it
    is ``torch.onnx``); where that cannot be done (another backend without its converter
    installed) or computes something else, the ``.keras`` format, which replicas load with
    Keras in safe mode (no code from the file runs)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InvalidRequest(
            f"the Keras model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "Lepton serves models with one of each",
            fix="wrap it in a model with one input tensor and one output tensor",
        )
    signature: dict[str, Any] = dict(given) if given is not None else {}
    if "inputs" not in signature:
        dims = list(model.inputs[0].shape[1:])
        if any(d is None for d in dims):
            raise InvalidRequest(
                f"the Keras model's input has open dimensions {dims}",
                fix="pass signature={'inputs': {'shape': [...], 'dtype': 'float32'}}",
            )
        signature["inputs"] = {"shape": [int(d) for d in dims], "dtype": "float32"}
    shape = _net_shape(signature)
    probe = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    try:
        expected = np.asarray(model.predict(probe, verbose=0))
    except Exception as exc:  # the model refuses a batch of the signature's shape
        raise _mismatch(
            f"running the model on a batch of shape {[2, *shape]} failed with "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if expected.ndim != 2:
        raise InvalidRequest(
            f"the model returns shape {list(expected.shape)}; Lepton serves [batch, outputs]",
            fix="end the model with a Dense layer (softmax for classes, none for a value)",
        )
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    width = int(expected.shape[1])
    sigmoid = width == 1 and activation == "sigmoid"
    inferred = list(range(width)) if width > 1 and activation == "softmax" else None
    task = _net_task(signature, width, inferred=[0, 1] if sigmoid else inferred, sigmoid=sigmoid)
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    config = {"class": cls, "source": "keras", "task": task}
    if sigmoid:
        config["output"] = "sigmoid"
    path = directory / "model.onnx"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the tracer's warnings about Python control flow
            model.export(str(path), format="onnx", verbose=False)
        _check_same(path, probe, expected)
    except Exception:  # no ONNX converter for this backend, or an export that differs
        path.unlink(missing_ok=True)
        model.save(str(directory / "model.keras"))
        _write_config(directory, {**config, "flavour": "keras"})
        return "keras", type(model).__name__, task, signature
    _write_config(directory, {**config, "flavour": "onnx"})
    return "onnx", type(model).__name__, task, signature


def _torch_inputs(module: Any) -> dict[str, Any]:
    """The input width of a module whose first layer says it (``Linear.in_features``)."""
    for layer in module.modules():
        if hasattr(layer, "in_features"):
            return {"shape": [int(layer.in_features)], "dtype": "float32"}
    raise InvalidRequest(
        f"cannot tell what input a {type(module).__name__} takes",
        fix="pass signature={'inputs': {'shape': [...], 'dtype': 'float32'}}",
    )


def _check_same(path: Path, example: np.ndarray, expected: np.ndarray) -> None:
    from lepton.registry.flavours import onnx_session

    session = onnx_session(path)
    got = session.run(None, {session.get_inputs()[0].name: example})[0]
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise InvalidRequest(
            "the ONNX export of the module computes something else than the module",
            fix="export it yourself with torch.onnx.export and register the .onnx file",
        )


# --- ONNX files ----------------------------------------------------------------------------


def _onnx_file(path: Path, directory: Path, given: dict[str, Any] | None) -> Prepared:
    import shutil

    from lepton.registry.flavours import onnx_session

    if path.suffix.lower() != ".onnx":
        raise InvalidRequest(
            f"{path.name} is not an .onnx file",
            fix="pass a model object, or the path of an .onnx file",
        )
    target = directory / "model.onnx"
    shutil.copyfile(path, target)
    session = onnx_session(target)  # refuses a pickle or anything ONNX Runtime cannot read
    first = session.get_inputs()[0]
    dims = list(first.shape[1:])
    static = [int(d) if isinstance(d, int) else None for d in dims]
    if given is None:
        if None in static:
            raise InvalidRequest(
                f"the ONNX input {first.name!r} has open dimensions {dims}",
                fix="pass signature={'inputs': {'shape': [...], 'dtype': 'float32'}}",
            )
        signature: dict[str, Any] = {"inputs": {"shape": static, "dtype": "float32"}}
    else:
        signature = dict(given)
        columns = input_columns(signature)
        shape = [len(columns)] if columns is not None else signature.get("inputs", {}).get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) != len(static)
            or any(s is not None and int(g) != s for g, s in zip(shape, static, strict=True))
        ):
            raise _mismatch(
                f"the graph takes [N, {', '.join(map(str, dims))}], the signature {shape}"
            )
        if columns is None:
            signature["inputs"] = {"shape": [int(d) for d in shape], "dtype": "float32"}
    outputs = dict(signature.get("outputs", {}))
    task = "classification" if outputs.get("classes") else "regression"
    outputs["task"] = task
    signature["outputs"] = outputs
    columns = input_columns(signature)
    width = [len(columns)] if columns is not None else list(signature["inputs"]["shape"])
    example = np.zeros((1, *width), dtype=np.float32)
    try:
        result = session.run(None, {first.name: example})[0]
    except Exception as exc:  # onnxruntime's own error types
        raise _mismatch(
            f"running the graph on a zero row failed: {str(exc).splitlines()[0]}"
        ) from None
    classes = outputs.get("classes")
    if classes and (np.ndim(result) != 2 or np.shape(result)[1] != len(classes)):
        raise _mismatch(
            f"the graph returns shape {list(np.shape(result))}, not one score per class"
        )
    _write_config(directory, {"class": path.name, "flavour": "onnx", "task": task})
    return "onnx", path.stem, task, signature


# --- shared --------------------------------------------------------------------------------


def _write_config(directory: Path, config: dict[str, Any]) -> None:
    (directory / "config.json").write_text(json.dumps(config, sort_keys=True), encoding="utf-8")


def _check_loads(directory: Path, signature: dict[str, Any]) -> None:
    """Load the folder as a registry client will, so a model that would not load (a type off the
    skops allow-list) is refused now rather than at its first use."""
    model = load_model(directory, signature)
    model.predict(_zero_row(signature))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
