"""The built-in photon for registered models: ``POST /predict``, ``POST /explain`` and, through
:mod:`lepton.serving.v2`, the Open Inference Protocol.

A request's body is decoded on the worker thread, inside the batch (the event loop only reads
bytes and sends bytes); the batch's rows are joined into one frame, the model runs once, and
each caller gets its own slice, already encoded. A body that does not fit the signature fails
only its own caller (422); a model that raises fails only its own batch.

``/explain`` goes through the same batcher: an explanation runs alone on the worker, between
batches, so it has ``/predict``'s queue bound (503 ``overloaded``), timeout (504) and failure
answers, and the worker stays the model's only caller.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from lepton.errors import InvalidRequest, LeptonError, NotFound, PayloadTooLarge
from lepton.limits import DEFAULT_MAX_ROWS
from lepton.serving.app import JSON, Reply, Request, Route
from lepton.serving.batcher import Batcher
from lepton.serving.inputs import Chunk, InputSpec, count_rows, decode_image, decode_json
from lepton.serving.metrics import Metrics

__all__ = [
    "Explainer",
    "ModelService",
    "ServedModel",
    "load_served_model",
]


_NON_JSON_NUMBER = re.compile(rb"(?<![\w\"])(?:NaN|-?Infinity)(?![\w\"])")


def not_json(body: bytes, exc: orjson.JSONDecodeError) -> InvalidRequest:
    """The 422 for a body orjson refused; NaN and Infinity, which Python's json writes by
    default but JSON lacks, get their own answer."""
    found = _NON_JSON_NUMBER.search(body)
    if found is not None:
        return InvalidRequest(
            f"the body holds {found.group().decode()}, which JSON has no literal for",
            fix="send null for a missing value (json.dumps(..., allow_nan=False) catches these)",
        )
    return InvalidRequest(
        f"the body is not JSON ({exc})", fix="send a JSON object with rows, columns or inputs"
    )


class ServedModel(Protocol):
    """What the runtime needs of a loaded model (``lepton.registry.flavours.LoadedModel``)."""

    signature: dict[str, Any]

    @property
    def task(self) -> str: ...

    @property
    def classes(self) -> list[Any] | None: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


class Explainer(Protocol):
    """The seam for ``lepton.explain``: attributions for the rows of ``X``, explaining class
    ``target`` (None: the predicted one), with image overlays when ``overlay``; the answer is
    JSON-able or has ``to_dict()``."""

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Any: ...


@dataclass
class _Builtin:
    """A built-in algorithm's model with its signature (used until the registry's loader)."""

    model: Any
    signature: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.model.task)

    @property
    def classes(self) -> list[Any] | None:
        classes = self.model.classes
        return list(classes) if classes is not None else None

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))


def load_served_model(directory: Path) -> ServedModel:
    """Load the model in ``directory``: the registry's loader when present, else the built-in
    algorithm library's own (the one switch to flip when the registry lands everywhere)."""
    if not (directory / "config.json").is_file():
        raise InvalidRequest(
            f"{directory} holds no model (no config.json)", fix="pass the folder of a saved model"
        )
    try:
        flavours = importlib.import_module("lepton.registry.flavours")
    except ModuleNotFoundError:
        flavours = None
    if flavours is not None and hasattr(flavours, "load_model"):
        loaded: ServedModel = flavours.load_model(directory)
        if loaded.signature:
            return loaded
        loaded.signature = _signature_from_config(directory)
        return loaded
    from lepton.algorithms.registry import get_algorithm
    from lepton.registry.artifacts import read_config

    config = read_config(directory)
    model = get_algorithm(str(config["algorithm"])).load(directory)
    path = directory / "signature.json"
    signature = (
        json.loads(path.read_text()) if path.is_file() else _signature_from_config(directory)
    )
    return _Builtin(model, signature)


def _signature_from_config(directory: Path) -> dict[str, Any]:
    """A signature from a built-in model's ``config.json`` (its columns and their roles)."""
    config = json.loads((directory / "config.json").read_text())
    schema = config.get("schema") or {}
    roles = {c: "float64" for c in schema.get("numeric", [])}
    roles |= {c: "datetime64[ns]" for c in schema.get("datetime", [])}
    roles |= {c: "object" for c in schema.get("categorical", [])}
    names = schema.get("order") or config.get("feature_names") or list(roles)
    inputs = [{"name": n, "dtype": roles.get(n, "object")} for n in names]
    outputs = {"task": config.get("task"), "classes": config.get("classes")}
    return {"inputs": inputs, "outputs": outputs} if inputs else {"outputs": outputs}


_NUMPY = orjson.OPT_SERIALIZE_NUMPY
log = logging.getLogger("lepton.serving")


class _Job:
    """One request for the worker: how to decode it and how to encode its answer. ``rows``,
    when set, returns the request's rows as plain lists if the body is the common
    ``{"inputs": [[...], ...]}`` form (else None), for the batch-wide fast path."""

    __slots__ = ("decode", "encode", "rows")

    def __init__(
        self,
        decode: Callable[[], Chunk],
        encode: Callable[[Any, Any], Reply],
        rows: Callable[[], list[Any] | None] | None = None,
    ) -> None:
        self.decode = decode
        self.encode = encode
        self.rows = rows


class _Solo:
    """A request the worker runs by itself between batches (an explanation): ``run`` returns
    its whole answer."""

    __slots__ = ("run",)

    def __init__(self, run: Callable[[], Reply]) -> None:
        self.run = run


class ModelService:
    """A loaded model served over HTTP.

    Args:
        model: the loaded model.
        name: the model's name in the V2 protocol.
        explainer: a factory called on the first ``/explain`` (None: explanations are off).
        max_rows: the most rows one request may carry; more get 413 before the model runs.
    """

    def __init__(
        self,
        model: ServedModel,
        *,
        name: str,
        explainer: Callable[[ServedModel], Explainer | None] | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        self.model = model
        self.max_rows = max_rows
        self.name = name
        self.spec = InputSpec.from_signature(model.signature or {})
        self.classifier = model.task == "classification" and bool(model.classes)
        self.classes = list(model.classes or [])
        self._class_array = np.asarray(self.classes, dtype=object)
        self._explainer_factory = explainer
        self._explainer: Explainer | None = None
        self._explainer_lock = threading.Lock()
        # Width of the numeric matrix a batch can be read into at once, or 0: an all-numeric
        # table, or a one-dimensional tensor of floats.
        spec = self.spec
        flat = spec.shape is not None and len(spec.shape) == 1 and "float" in spec.dtype
        self.fast_width = (
            len(spec.columns) if spec.numeric else (spec.shape or (0,))[0] if flat else 0
        )

    # -- the batch -----------------------------------------------------------------------

    def frame(self, chunks: Sequence[Chunk]) -> Any:
        """The rows of ``chunks`` as one model input."""
        if self.spec.columns:
            import pandas as pd

            if self.spec.numeric:
                matrix = (
                    chunks[0].rows if len(chunks) == 1 else np.concatenate([c.rows for c in chunks])
                )
                return pd.DataFrame(matrix, columns=list(self.spec.columns), copy=False)
            return pd.DataFrame(
                {c: [v for chunk in chunks for v in chunk.rows[c]] for c in self.spec.columns}
            )
        if self.spec.shape is not None:
            return chunks[0].rows if len(chunks) == 1 else np.concatenate([c.rows for c in chunks])
        rows: list[Any] = []
        for chunk in chunks:
            rows.extend(chunk.rows if isinstance(chunk.rows, list) else [chunk.rows])
        return rows

    def infer(self, X: Any) -> tuple[list[Any], list[Any] | None]:
        """Labels (or values) and probabilities (or None) for ``X``, as lists."""
        if self.classifier:
            proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
            labels = self._class_array[np.argmax(proba, axis=1)]
            return labels.tolist(), proba.tolist()
        values = np.asarray(self.model.predict(X))
        return values.tolist(), None

    def _fast(self, jobs: list[_Job]) -> list[Any] | None:
        """The whole batch read as one float matrix with one ``np.asarray``, or None when any
        request needs the per-request path (another body form, or a value that is wrong)."""
        rows: list[Any] = []
        counts: list[int] = []
        for job in jobs:
            own = job.rows() if job.rows is not None else None
            if own is None:
                return None
            rows.extend(own)
            counts.append(len(own))
        try:
            matrix = np.asarray(rows)
        except ValueError:  # ragged
            return None
        if matrix.ndim != 2 or matrix.shape[1] != self.fast_width or matrix.dtype.kind not in "iuf":
            return None
        try:
            labels, proba = self.infer(
                self.frame([Chunk(matrix.astype(np.float64, copy=False), len(matrix))])
            )
        except LeptonError:  # the per-request path finds whose input it was
            return None
        results: list[Any] = []
        start = 0
        for job, n in zip(jobs, counts, strict=True):
            end = start + n
            results.append(
                job.encode(labels[start:end], None if proba is None else proba[start:end])
            )
            start = end
        return results

    def run_batch(self, jobs: Sequence[_Job | _Solo]) -> list[Any]:
        """Decode each request (a bad one fails alone), run the model once, split, encode;
        then run each solo request (an explanation) by itself."""
        batched = [(i, job) for i, job in enumerate(jobs) if isinstance(job, _Job)]
        if len(batched) == len(jobs):
            return self._run_jobs([job for _, job in batched])
        results: list[Any] = [None] * len(jobs)
        if batched:
            answers = self._run_jobs([job for _, job in batched])
            for (i, _), answer in zip(batched, answers, strict=True):
                results[i] = answer
        for i, job in enumerate(jobs):
            if isinstance(job, _Solo):
                results[i] = self._run_solo(job)
        return results

    def _run_solo(self, job: _Solo) -> Any:
        try:
            return job.run()
        except LeptonError as exc:
            return exc
        except Exception as exc:  # the batcher names the handler; the traceback goes here
            log.exception("%s failed on a request", self.name)
            return exc

    def _run_jobs(self, jobs: list[_Job]) -> list[Any]:
        if self.fast_width:
            fast = self._fast(jobs)
            if fast is not None:
                return fast
        results: list[Any] = [None] * len(jobs)
        good: list[int] = []
        chunks: list[Chunk] = []
        for i, job in enumerate(jobs):
            try:
                chunks.append(job.decode())
                good.append(i)
            except LeptonError as exc:
                results[i] = exc
        if not chunks:
            return results
        try:
            labels, proba = self.infer(self.frame(chunks))
        except LeptonError as exc:
            if len(chunks) > 1:  # a mixed batch: rerun alone so only the bad input fails
                for i, chunk in zip(good, chunks, strict=True):
                    results[i] = self._alone(jobs[i], chunk)
                return results
            results[good[0]] = exc
            return results
        start = 0
        for i, chunk in zip(good, chunks, strict=True):
            end = start + chunk.n
            results[i] = jobs[i].encode(
                labels[start:end], None if proba is None else proba[start:end]
            )
            start = end
        return results

    def _alone(self, job: _Job, chunk: Chunk) -> Any:
        try:
            labels, proba = self.infer(self.frame([chunk]))
        except LeptonError as exc:
            return exc
        return job.encode(labels, proba)

    # -- /predict ------------------------------------------------------------------------

    def predict_job(self, request: Request) -> _Job:
        body = request.body
        kind = request.content_type.split(b";", 1)[0].strip().lower()
        if kind.startswith(b"image/"):
            return _Job(lambda: self._image_chunk([(b"body", body)]), self._encode_predict)
        if kind == b"multipart/form-data":
            raise InvalidRequest("this route takes JSON", fix="send images to /predict")

        parsed: list[Any] = []
        # numpy reads true/false as 1/0: a body that may hold them takes the checked path.
        bools = b"true" in body or b"false" in body

        def load() -> Any:
            if not parsed:
                try:
                    parsed.append(orjson.loads(body))
                except orjson.JSONDecodeError as exc:
                    raise not_json(body, exc) from None
            return parsed[0]

        def decode() -> Chunk:
            doc = load()
            self._count(count_rows(self.spec, doc))  # before the values are walked
            return self.bounded(decode_json(self.spec, doc, bools=bools))

        def rows() -> list[Any] | None:
            if bools:
                return None
            try:
                doc = load()
            except InvalidRequest:
                return None
            inputs = doc.get("inputs") if type(doc) is dict and len(doc) == 1 else None
            if type(inputs) is not list or not inputs:
                return None
            if len(inputs) > self.max_rows:
                return None  # decode() refuses it
            first = type(inputs[0])
            return inputs if first is list else [inputs] if first in (float, int) else None

        return _Job(decode, self._encode_predict, rows if self.fast_width else None)

    def bounded(self, chunk: Chunk) -> Chunk:
        """`chunk`, unless it holds more rows than one request may (413)."""
        self._count(chunk.n)
        return chunk

    def _count(self, n: int) -> None:
        if n > self.max_rows:
            raise PayloadTooLarge(
                f"the request holds {n:,} rows; this deployment takes at most "
                f"{self.max_rows:,} per request",
                fix="split it into smaller requests, or raise the limit: "
                "lepton deployment update NAME --max-rows N",
            )

    def _image_chunk(self, files: list[tuple[bytes, bytes]]) -> Chunk:
        self._count(len(files))
        images = [decode_image(self.spec, content, name.decode()) for name, content in files]
        return Chunk(np.stack(images), len(images))

    def _encode_predict(self, labels: Any, proba: Any) -> Reply:
        if proba is None:
            return Reply(200, orjson.dumps({"predictions": labels}, option=_NUMPY))
        return Reply(
            200,
            orjson.dumps(
                {"predictions": labels, "probabilities": proba, "classes": self.classes},
                option=_NUMPY,
            ),
        )

    async def _files(self, request: Request) -> list[tuple[bytes, bytes]]:
        from starlette.datastructures import UploadFile
        from starlette.requests import Request as StarletteRequest

        form = await StarletteRequest(request.scope, request.receive_again()).form()
        files = [
            (key.encode(), await value.read())
            for key, value in form.multi_items()
            if isinstance(value, UploadFile)
        ]
        await form.close()
        if not files:
            raise InvalidRequest("the form holds no file", fix="attach images as file parts")
        return files

    def routes(self, batcher: Batcher) -> list[Route]:
        async def predict(request: Request) -> Any:
            if request.content_type.startswith(b"multipart/form-data"):
                files = await self._files(request)
                job = _Job(lambda: self._image_chunk(files), self._encode_predict)
            else:
                job = self.predict_job(request)
            return await batcher.submit(job)

        async def explain(request: Request) -> Any:
            if self._explainer_factory is None:
                raise _no_explanations()
            query = dict(request.query)
            target = query.get("class")
            overlay = query.get("overlay", "").lower() in ("1", "true", "yes")
            job = self.predict_job(request)
            return await batcher.submit(_Solo(lambda: self._explain(job, target, overlay)))

        return [
            Route("POST", "/predict", "predict", predict, batcher=batcher),
            Route("POST", "/explain", "explain", explain),
        ]

    def _explain(self, job: _Job, target: Any, overlay: bool) -> Reply:
        """One ``/explain`` request, on the worker thread."""
        explainer = self.explainer()
        if explainer is None:
            raise _no_explanations()
        X = self.frame([job.decode()])
        result = explainer.explain(X, target=target, overlay=overlay)
        if hasattr(result, "to_dict"):  # lepton.explain's Explanation: PNGs as base64
            result = result.to_dict()
        return Reply(200, orjson.dumps(result, option=_NUMPY), JSON)

    def warm_up(self) -> None:
        """One prediction on zeros before the replica takes traffic, where the signature says
        what zeros look like: the first call pays lazy imports and first-call set-up (about
        0.5 s for pandas inside the registry's input check), which would otherwise land on the
        first caller, or on every replica a rolling update starts. A model that refuses zeros
        is left cold."""
        spec = self.spec
        if spec.numeric:
            chunk = Chunk(np.zeros((1, len(spec.columns))), 1)
        elif spec.shape is not None:
            chunk = Chunk(np.zeros((1, *spec.shape), dtype=np.dtype(spec.dtype)), 1)
        else:
            return
        try:
            self.infer(self.frame([chunk]))
        except Exception:  # warming is best effort; real inputs report their own errors
            log.debug("warm-up prediction failed", exc_info=True)

    def explainer(self) -> Explainer | None:
        """The explainer, made on first use (explainers import heavy libraries), once."""
        with self._explainer_lock:
            if self._explainer is None and self._explainer_factory is not None:
                self._explainer = self._explainer_factory(self.model)
            return self._explainer

    def batcher(self, *, metrics: Metrics, **options: Any) -> Batcher:
        return Batcher(
            self.run_batch,
            name=self.name,
            on_batch=metrics.batch_recorder("predict"),
            **options,
        )

    def openapi(self) -> dict[str, Any]:
        body = {
            "type": "object",
            "description": "rows, columns or inputs; validated against the model's signature",
            "properties": {
                "rows": {"type": "array", "items": {"type": "object"}},
                "columns": {"type": "object"},
                "inputs": {"type": "array"},
            },
        }
        op = {
            "requestBody": {"content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "predictions (and probabilities)"},
                          "422": {"description": "the input does not fit the signature"}},
        }  # fmt: skip
        return {
            "openapi": "3.1.0",
            "info": {"title": self.name, "version": "1"},
            "paths": {"/predict": {"post": op}, "/explain": {"post": op}},
            "x-signature": self.model.signature,
        }


def _no_explanations() -> NotFound:
    return NotFound(
        "explanations are not enabled on this deployment",
        fix="deploy with explanations enabled, or call /predict",
    )


def find_explainer(model: ServedModel, directory: Path | None = None) -> Explainer | None:
    """``lepton.explain.explainer_for(model)``, measured against the background sample stored
    in the model's folder (``explain/background.json``) when there is one."""
    from lepton.explain import explainer_for, stored_background

    background = stored_background(directory) if directory is not None else None
    explainer: Explainer = explainer_for(model, background=background)
    return explainer
