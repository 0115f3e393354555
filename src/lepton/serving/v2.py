"""The Open Inference Protocol (KServe / Triton "V2") for the built-in model photon.

``/v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}``,
``/v2/models/{name}/ready`` and ``/v2/models/{name}/infer`` (also under
``/versions/{v}``), with FP16/32/64, (U)INT8-64, BOOL and BYTES tensors and the binary-data
extension (``Inference-Header-Content-Length``), which ``tritonclient.http`` uses by default.
Errors follow the protocol: ``{"error": "<message>"}``.

A tabular model takes either one ``[N, columns]`` tensor (named ``input``) or one ``[N]``
tensor per column, named as the column. It answers ``predictions`` and, for classifiers,
``probabilities`` (``[N, classes]``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from lepton.errors import InvalidRequest, LeptonError
from lepton.serving.app import JSON, Reply, Request, Route, retry_headers
from lepton.serving.batcher import Batcher
from lepton.serving.inputs import Chunk
from lepton.serving.model import ModelService, _Job

__all__ = ["v2_routes"]

_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}  # fmt: skip
_HEADER = b"inference-header-content-length"


def _v2_error(error: LeptonError) -> Reply:
    message = f"{error.message}. {error.fix}" if error.fix else error.message
    return Reply(error.status_code, orjson.dumps({"error": message}), JSON, retry_headers(error))


def _tensor(meta: Any, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    """One input tensor and the binary offset after it."""
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise InvalidRequest(
            "each input needs a name, shape, datatype and data",
            fix='send {"name": "input", "shape": [N, D], "datatype": "FP64", "data": [...]}',
        )
    name = meta["name"]
    datatype = meta.get("datatype")
    shape = meta.get("shape")
    if datatype not in _DTYPES:
        raise InvalidRequest(
            f"input {name!r} has datatype {datatype!r}; allowed are {', '.join(_DTYPES)}",
            fix=f"GET /v2/models/NAME says which datatype input {name!r} takes",
        )
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidRequest(
            f"input {name!r} needs a shape of whole numbers",
            fix="give the tensor's shape, e.g. [2, 4] for two rows of four values",
        )
    size = (meta.get("parameters") or {}).get("binary_data_size")
    count = int(np.prod(shape)) if shape else 1
    if size is not None:
        raw = binary[offset : offset + int(size)]
        if len(raw) != int(size):
            raise InvalidRequest(
                f"input {name!r}: the binary data is shorter than declared",
                fix="set binary_data_size to the bytes appended for this input",
            )
        offset += int(size)
        if datatype == "BYTES":
            array = np.asarray(_unpack_bytes(raw, name), dtype=object)
        else:
            array = np.frombuffer(raw, dtype=_DTYPES[datatype])
    else:
        data = meta.get("data")
        if data is None:
            raise InvalidRequest(f"input {name!r} has no data", fix="send data or binary data")
        try:
            array = np.asarray(data, dtype=_DTYPES[datatype]).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise InvalidRequest(
                f"input {name!r}: the data is not {datatype}",
                fix=f"send a flat or nested list of {datatype} values, or change the datatype",
            ) from None
    if array.size != count:
        raise InvalidRequest(
            f"input {name!r} has {array.size} values; its shape {shape} needs {count}",
            fix="send as many values as the shape's dimensions multiply to",
        )
    return name, array.reshape(shape), offset


def _unpack_bytes(raw: memoryview, name: str) -> list[bytes]:
    items: list[bytes] = []
    i = 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise InvalidRequest(
                f"input {name!r}: truncated BYTES element",
                fix="prefix each BYTES element with its length as a 4-byte little-endian int",
            )
        (n,) = struct.unpack_from("<I", raw, i)
        items.append(bytes(raw[i + 4 : i + 4 + n]))
        i += 4 + n
    return items


def _pack_bytes(values: list[Any]) -> bytes:
    parts = []
    for value in values:
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


class _Codec:
    """Turns V2 tensors into the model's rows and its answers into V2 tensors."""

    def __init__(self, service: ModelService) -> None:
        self.service = service
        spec = service.spec
        self.spec = spec
        classes = service.classes
        if service.classifier and all(isinstance(c, bool) for c in classes):
            self.label_type = "BOOL"
        elif service.classifier and all(isinstance(c, int) for c in classes):
            self.label_type = "INT64"
        elif service.classifier and not all(isinstance(c, float) for c in classes):
            self.label_type = "BYTES"
        else:
            self.label_type = "FP64"

    def metadata(self) -> dict[str, Any]:
        spec = self.spec
        if spec.columns and spec.numeric:
            inputs = [{"name": "input", "datatype": "FP64", "shape": [-1, len(spec.columns)]}]
        elif spec.columns:
            kinds = {"number": "FP64", "bool": "BOOL"}
            inputs = [
                {"name": c, "datatype": kinds.get(k, "BYTES"), "shape": [-1]}
                for c, k in zip(spec.columns, spec.kinds, strict=True)
            ]
        elif spec.shape is not None:
            dtype = {v: k for k, v in _DTYPES.items()}.get(np.dtype(spec.dtype).type, "FP32")
            inputs = [{"name": "input", "datatype": dtype, "shape": [-1, *spec.shape]}]
        else:
            inputs = [{"name": "input", "datatype": "FP64", "shape": [-1, -1]}]
        outputs = [{"name": "predictions", "datatype": self.label_type, "shape": [-1]}]
        if self.service.classifier:
            outputs.append(
                {
                    "name": "probabilities",
                    "datatype": "FP64",
                    "shape": [-1, len(self.service.classes)],
                }
            )
        return {
            "name": self.service.name,
            "versions": ["1"],
            "platform": "lepton",
            "inputs": inputs,
            "outputs": outputs,
        }

    def job(self, request: Request) -> _Job:
        body = request.body
        header = request.header(_HEADER)
        state: dict[str, Any] = {}

        def decode() -> Chunk:
            try:
                split = int(header) if header is not None else len(body)
                doc = orjson.loads(body[:split])
            except (ValueError, orjson.JSONDecodeError):
                # tritonclient writes this header into the caller's headers dict, so a dict
                # reused for a later all-JSON request carries a stale length: try the whole body.
                try:
                    split, doc = len(body), orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise InvalidRequest(
                        "the inference request is not JSON",
                        fix="send a JSON header; with binary data, set "
                        "Inference-Header-Content-Length to its length",
                    ) from None
            if (
                not isinstance(doc, dict)
                or not isinstance(doc.get("inputs"), list)
                or not doc["inputs"]
            ):
                raise InvalidRequest(
                    "the request needs a non-empty 'inputs' list",
                    fix="GET /v2/models/NAME lists the inputs the model takes",
                )
            binary = memoryview(body)[split:]
            offset = 0
            tensors: dict[str, np.ndarray] = {}
            for meta in doc["inputs"]:
                name, array, offset = _tensor(meta, binary, offset)
                tensors[name] = array
            state["doc"] = doc
            return self.service.bounded(self.chunk(tensors))

        def encode(labels: Any, proba: Any) -> Reply:
            return self.answer(state.get("doc", {}), labels, proba)

        return _Job(decode, encode)

    def chunk(self, tensors: dict[str, np.ndarray]) -> Chunk:
        spec = self.spec
        if spec.columns:
            d = len(spec.columns)
            if len(tensors) == 1:
                ((name, array),) = tensors.items()
                if array.ndim == 2 and array.shape[1] == d:
                    if spec.numeric:
                        return Chunk(array.astype(np.float64, copy=False), len(array))
                    cols = {c: _plain(array[:, j]) for j, c in enumerate(spec.columns)}
                    return Chunk(cols, len(array))
                if name not in spec.columns:
                    raise InvalidRequest(
                        f"input {name!r} has shape {list(array.shape)}; the model takes one "
                        f"[N, {d}] tensor or one [N] tensor per column: {spec.describe()}",
                        fix="name the [N, columns] tensor 'input', or send one per column",
                    )
            missing = [c for c in spec.columns if c not in tensors]
            if missing:
                raise InvalidRequest(
                    f"no input named {missing[0]!r}; the model takes: {spec.describe()}",
                    fix="send one [N] tensor per column, named as the column",
                )
            columns = {c: tensors[c].reshape(-1) for c in spec.columns}
            n = len(columns[spec.columns[0]])
            if any(len(v) != n for v in columns.values()):
                raise InvalidRequest(
                    "every column tensor needs the same length",
                    fix="send the same number of rows in every column",
                )
            if spec.numeric:
                return Chunk(np.column_stack(list(columns.values())).astype(np.float64), n)
            return Chunk({c: _plain(v) for c, v in columns.items()}, n)
        if len(tensors) != 1:
            raise InvalidRequest(
                "this model takes exactly one input tensor",
                fix="send the whole batch as one tensor",
            )
        array = next(iter(tensors.values()))
        if spec.shape is not None and array.shape[1:] != spec.shape:
            raise InvalidRequest(
                f"the input has shape {list(array.shape)}; the model takes [N, "
                f"{', '.join(map(str, spec.shape))}]",
                fix="GET /v2/models/NAME gives the shape the model takes",
            )
        return Chunk(array if spec.shape is not None else array.tolist(), len(array))

    def answer(self, doc: dict[str, Any], labels: list[Any], proba: Any) -> Reply:
        parameters = doc.get("parameters") or {}
        wanted = doc.get("outputs")
        default_binary = bool(parameters.get("binary_data_output", False))
        available = {"predictions": (self.label_type, labels)}
        if proba is not None:
            available["probabilities"] = ("FP64", proba)
        names = [o.get("name") for o in wanted] if isinstance(wanted, list) else list(available)
        binary_of = {
            o.get("name"): bool((o.get("parameters") or {}).get("binary_data", default_binary))
            for o in (wanted if isinstance(wanted, list) else [])
        }
        outputs = []
        chunks: list[bytes] = []
        for name in names:
            if name not in available:
                raise InvalidRequest(
                    f"no output named {name!r}; outputs are: {', '.join(available)}",
                    fix="ask for one of those outputs, or for none to get them all",
                )
            datatype, values = available[name]
            array = np.asarray(values, dtype=_DTYPES[datatype] if datatype != "BYTES" else object)
            out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
            if binary_of.get(name, default_binary):
                raw = (
                    _pack_bytes(array.reshape(-1).tolist())
                    if datatype == "BYTES"
                    else np.ascontiguousarray(array).tobytes()
                )
                out["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                out["data"] = (
                    [str(v) for v in array.reshape(-1).tolist()]
                    if datatype == "BYTES"
                    else array.reshape(-1)
                )
            outputs.append(out)
        body: dict[str, Any] = {
            "model_name": self.service.name,
            "model_version": "1",
            "outputs": outputs,
        }
        if "id" in doc:
            body["id"] = doc["id"]
        head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        if not chunks:
            return Reply(200, head, JSON)
        return Reply(
            200,
            head + b"".join(chunks),
            b"application/octet-stream",
            [(_HEADER, str(len(head)).encode())],
        )


def _plain(values: np.ndarray) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def v2_routes(
    service: ModelService, batcher: Batcher, ready: Callable[[], bool]
) -> tuple[list[Route], Callable[[str, str], Route | None]]:
    """The V2 routes for ``service``, and a fallback that answers other model names."""
    codec = _Codec(service)
    name = service.name
    base = f"/v2/models/{name}"

    async def live(request: Request) -> Reply:
        return Reply(200, b"{}")

    async def is_ready(request: Request) -> Reply:
        return Reply(200 if ready() else 503, b"{}")

    async def server(request: Request) -> Reply:
        from lepton._version import __version__

        info = {"name": "lepton", "version": __version__, "extensions": ["binary_tensor_data"]}
        return Reply(200, orjson.dumps(info))

    async def metadata(request: Request) -> Reply:
        return Reply(200, orjson.dumps(codec.metadata()))

    async def infer(request: Request) -> Any:
        return await batcher.submit(codec.job(request))

    routes = [
        Route("GET", "/v2/health/live", "v2_live", live, public=True),
        Route("GET", "/v2/health/ready", "v2_ready", is_ready, public=True),
        Route("GET", "/v2", "v2_server", server, render_error=_v2_error),
    ]
    for prefix in (base, f"{base}/versions/1"):
        routes += [
            Route("GET", prefix, "v2_metadata", metadata, render_error=_v2_error),
            Route("GET", f"{prefix}/ready", "v2_model_ready", is_ready, render_error=_v2_error),
            Route(
                "POST",
                f"{prefix}/infer",
                "v2_infer",
                infer,
                batcher=batcher,
                render_error=_v2_error,
            ),
        ]

    async def unknown(request: Request) -> Reply:
        other = request.scope["path"].split("/")[3]
        message = f"unknown model {other!r}; this replica serves {name!r}"
        return Reply(404, orjson.dumps({"error": message}), JSON)

    def fallback(method: str, path: str) -> Route | None:
        if path.startswith("/v2/models/"):
            return Route(method, path, "v2_unknown", unknown, render_error=_v2_error)
        return None

    return routes, fallback
