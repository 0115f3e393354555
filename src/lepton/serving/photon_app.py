"""Routes from a :class:`~lepton.photon.Photon`: inputs validated from the type annotations,
outputs encoded from what the handler returns, and the OpenAPI document.

Each handler gets a pydantic model built from its signature (``<Class>_<path>Input``); a body
that does not fit is a 422 that names the field. Sync handlers run on the handler's batcher
(worker threads); ``async`` handlers and generator handlers run on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from starlette.responses import Response, StreamingResponse

from lepton.errors import HandlerError, HandlerTimeout, InvalidRequest, LeptonError
from lepton.photon.photon import HandlerSpec, Photon
from lepton.photon.types import File
from lepton.serving.app import JSON, Reply, Request, Route
from lepton.serving.batcher import Batcher, as_lepton_error
from lepton.serving.metrics import Metrics

__all__ = ["Limits", "photon_routes", "validation_message"]


@dataclass(frozen=True)
class Limits:
    """Runtime settings that override a photon's own (``None``: keep the photon's)."""

    max_batch_size: int | None = None
    max_wait_time: float | None = None
    timeout: float | None = None
    max_queue: int = 1024


def validation_message(error: ValidationError) -> str:
    """Each failing field by name, with what was wrong."""
    parts = []
    for item in error.errors()[:5]:
        field = ".".join(str(p) for p in item["loc"]) or "body"
        if item["type"] == "missing":
            parts.append(f"field {field!r} is required")
        elif item["type"] == "extra_forbidden":
            parts.append(f"field {field!r} is not an input of this handler")
        else:
            parts.append(f"field {field!r}: {item['msg']} (got {_short(item.get('input'))})")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Handler:
    """One handler's decode, call and encode steps."""

    def __init__(self, photon: Photon, attr: str, spec: HandlerSpec, limits: Limits) -> None:
        self.photon = photon
        self.spec = spec
        self.func: Callable[..., Any] = getattr(photon, attr)
        cls = type(photon).__name__
        self.label = f"{cls}.{attr}"
        hints = typing.get_type_hints(self.func, include_extras=True)
        signature = inspect.signature(self.func)
        fields: dict[str, Any] = {}
        for name, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{self.label}: *args and **kwargs cannot be inputs; name them")
            default = ... if param.default is param.empty else param.default
            fields[name] = (hints.get(name, Any), default)
        self.fields = list(fields)
        self.file_fields = [n for n, (t, _) in fields.items() if _mentions_file(t)]
        suffix = spec.path.strip("/").replace("/", "_") or "root"
        self.model: type[BaseModel] = create_model(
            f"{cls}_{suffix}{spec.method.title()}Input",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
        self.returns = hints.get("return", Any)
        self.response_class = (
            self.returns
            if inspect.isclass(self.returns) and issubclass(self.returns, Response)
            else None
        )
        self.is_async = inspect.iscoroutinefunction(self.func)
        self.is_generator = inspect.isgeneratorfunction(self.func) or inspect.isasyncgenfunction(
            self.func
        )
        timeout = spec.timeout or limits.timeout or photon.handler_timeout
        self.timeout = float(timeout)
        self.batcher: Batcher | None = None
        if not (self.is_async or self.is_generator):
            size = 1
            wait = 0.0
            if spec.batched:
                size = limits.max_batch_size or spec.max_batch_size or 1
                given = limits.max_wait_time
                wait = given if given is not None else (spec.max_wait_time or 0.0)
            queue_timeout = spec.queue_timeout or photon.handler_queue_timeout
            self.batcher = Batcher(
                self._run_batch if spec.batched else self._run_one,
                name=self.label,
                max_batch_size=size,
                max_wait_time=wait,
                timeout=self.timeout,
                queue_timeout=queue_timeout,
                max_queue=limits.max_queue,
                workers=max(1, int(photon.handler_max_concurrency)),
            )

    # -- decode --------------------------------------------------------------------------

    async def decode(self, request: Request) -> dict[str, Any]:
        try:
            if self.spec.method == "GET":
                return self._validate(_multi(request.query))
            kind = request.content_type.split(b";", 1)[0].strip().lower()
            if kind in (b"multipart/form-data", b"application/x-www-form-urlencoded"):
                return self._validate(await self._form(request))
            if kind in (b"", b"application/json") or kind.endswith(b"+json"):
                if not request.body.strip():
                    return self._validate({})
                return self._kwargs(self.model.model_validate_json(request.body))
            if len(self.file_fields) == 1:  # a raw upload: the body is the file
                ctype = kind.decode("latin-1")
                return self._validate({self.file_fields[0]: File(request.body, content_type=ctype)})
        except ValidationError as exc:
            raise InvalidRequest(
                validation_message(exc), fix=f"see the inputs of {self.spec.path} at /openapi.json"
            ) from None
        raise InvalidRequest(
            f"{self.spec.path} does not take a {kind.decode('latin-1')} body",
            fix="send JSON (application/json) or a multipart form",
        )

    def _validate(self, values: dict[str, Any]) -> dict[str, Any]:
        return self._kwargs(self.model.model_validate(values))

    def _kwargs(self, model: BaseModel) -> dict[str, Any]:
        return {name: getattr(model, name) for name in self.fields}

    async def _form(self, request: Request) -> dict[str, Any]:
        from starlette.datastructures import UploadFile
        from starlette.requests import Request as StarletteRequest

        form = await StarletteRequest(request.scope, request.receive_again()).form()
        values: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                item: Any = File(
                    await value.read(), filename=value.filename, content_type=value.content_type
                )
            else:
                item = value
            if key in values:
                existing = values[key]
                values[key] = [*existing, item] if isinstance(existing, list) else [existing, item]
            else:
                values[key] = item
        await form.close()
        return values

    # -- call ----------------------------------------------------------------------------

    def _run_one(self, payloads: list[dict[str, Any]]) -> list[Any]:
        try:
            return [self.func(**payloads[0])]
        except Exception as exc:  # the batcher names the handler
            return [exc]

    def _run_batch(self, payloads: list[dict[str, Any]]) -> list[Any]:
        lists = {name: [p[name] for p in payloads] for name in self.fields}
        result = self.func(**lists)
        if not isinstance(result, (list, tuple)):
            raise HandlerError(
                f"batched handler {self.label} returned {type(result).__name__}, not a list",
                fix="a batched handler returns a list with one result per input",
            )
        return list(result)

    async def endpoint(self, request: Request) -> Any:
        kwargs = await self.decode(request)
        if self.batcher is not None:
            result = await self.batcher.submit(kwargs)
        elif self.is_generator:
            result = self.func(**kwargs)
        else:
            try:
                result = await asyncio.wait_for(self.func(**kwargs), self.timeout)
            except TimeoutError:
                raise HandlerTimeout(
                    f"handler {self.label} ran over its {self.timeout:g} s timeout",
                    fix="raise the handler's timeout, or send smaller inputs",
                ) from None
            except LeptonError:
                raise
            except Exception as exc:
                raise as_lepton_error(exc, self.label) from exc
        return self.encode(result)

    # -- encode --------------------------------------------------------------------------

    def encode(self, result: Any) -> Any:
        if isinstance(result, Response):
            return result
        streaming = isinstance(result, (types.GeneratorType, types.AsyncGeneratorType))
        if self.response_class is not None and not isinstance(result, Response):
            if streaming or issubclass(self.response_class, StreamingResponse):
                media = self.response_class.media_type or "text/plain; charset=utf-8"
                return StreamingResponse(result, media_type=media)
            return self.response_class(result)
        if streaming:
            return StreamingResponse(result, media_type="text/plain; charset=utf-8")
        if result is None:
            return Reply(204, b"")
        if isinstance(result, (bytes, bytearray)):
            return Reply(200, bytes(result), b"application/octet-stream")
        try:
            body = orjson.dumps(
                result,
                default=_json_default,
                option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
            )
        except TypeError as exc:
            raise HandlerError(
                f"handler {self.label} returned {type(result).__name__}, which is not JSON ({exc})",
                fix="return JSON-able values, bytes, a File, a pydantic model or a Response",
            ) from None
        return Reply(200, body, JSON)

    # -- schema --------------------------------------------------------------------------

    def openapi(self, components: dict[str, Any]) -> dict[str, Any]:
        template = "#/components/schemas/{model}"
        schema = self.model.model_json_schema(ref_template=template)
        components.update(schema.pop("$defs", {}))
        operation: dict[str, Any] = {"operationId": self.label.replace(".", "_")}
        if self.spec.method == "GET":
            operation["parameters"] = [
                {"name": name, "in": "query", "required": name in schema.get("required", []),
                 "schema": prop}
                for name, prop in schema.get("properties", {}).items()
            ]  # fmt: skip
        else:
            components[self.model.__name__] = schema
            ref = {"$ref": template.format(model=self.model.__name__)}
            content: dict[str, Any] = {"application/json": {"schema": ref}}
            if self.file_fields:
                content["multipart/form-data"] = {"schema": ref}
            if self.spec.examples:
                content["application/json"]["example"] = self.spec.examples[0]
            operation["requestBody"] = {
                "required": bool(schema.get("required")),
                "content": content,
            }
        if self.response_class is not None or self.is_generator:
            media = (
                self.response_class.media_type if self.response_class else None
            ) or "text/plain"
            answer = {"content": {media: {"schema": {"type": "string", "format": "binary"}}}}
        else:
            try:
                out = TypeAdapter(self.returns).json_schema(ref_template=template)
            except Exception:  # an unschematic return type still serves
                out = {}
            components.update(out.pop("$defs", {}))
            answer = {"content": {"application/json": {"schema": out}}}
        operation["responses"] = {
            "200": {"description": "the handler's result", **answer},
            "422": {"description": "an input did not validate; the message names the field"},
        }
        return operation


def _mentions_file(annotation: Any) -> bool:
    if annotation is File:
        return True
    return any(_mentions_file(arg) for arg in typing.get_args(annotation))


def _multi(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            existing = values[key]
            values[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            values[key] = value
    return values


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, File):
        return value.to_data_uri()
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def photon_routes(
    photon: Photon, *, limits: Limits, metrics: Metrics
) -> tuple[list[Route], dict[str, Any]]:
    """The routes of ``photon`` and its OpenAPI document."""
    routes: list[Route] = []
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    for attr, spec in type(photon).handler_specs():
        handler = _Handler(photon, attr, spec, limits)
        if handler.batcher is not None:
            handler.batcher.on_batch = metrics.batch_recorder(spec.path)
        routes.append(
            Route(spec.method, spec.path, spec.path, handler.endpoint, batcher=handler.batcher)
        )
        if spec.include_in_schema:
            paths.setdefault(spec.path, {})[spec.method.lower()] = handler.openapi(components)
    from lepton._version import __version__

    document = {
        "openapi": "3.1.0",
        "info": {"title": type(photon).__name__, "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    return routes, document
