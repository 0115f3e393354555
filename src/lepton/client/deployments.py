"""``client.deployments`` and ``client.photons``: serve models and photons, call them.

``predict`` and ``explain`` go straight to the replicas (inference never passes through the
control plane), with the deployment's own token: the one ``create`` returned (remembered by
this client), or one passed in. Where a deployment answers is asked of the control plane once
per client and name, then remembered, so inference costs one round trip and goes on while the
control plane is down; it is asked again when the replicas cannot be reached, or answer 401 or
404 as if the deployment had moved. A replica whose queue is full (503 ``overloaded``) is asked
again after the ``Retry-After`` it sends, a few times.
"""

from __future__ import annotations

import builtins
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lepton.errors import ConfigError, ConnectionFailed, InvalidRequest, NotFound, Overloaded
from lepton.limits import DEFAULT_MAX_ROWS
from lepton.schemas import (
    Deployment,
    DeploymentCreated,
    DeploymentRevision,
    DeploymentState,
    DeploymentTraffic,
    LogChunk,
    Photon,
)
from lepton.schemas.deployments import DEFAULT_TARGET_INFLIGHT

if TYPE_CHECKING:
    from lepton.client.client import Client

__all__ = ["Deployments", "Photons"]

_sleep = time.sleep  # the one clock of the retries: tests replace it, and never sleep


@dataclass(frozen=True)
class _Target:
    """Where a deployment answers, as the control plane last said."""

    id: str
    url: str
    public: bool
    timeout_s: float

    @classmethod
    def of(cls, deployment: Deployment) -> _Target:
        return cls(deployment.id, deployment.url, deployment.public, deployment.timeout_s)


class Deployments:
    """``client.deployments``.

    Attributes:
        retries: how many times ``predict`` and ``explain`` send a request again that a replica
            turned away as overloaded (503 ``overloaded``: nothing ran), waiting the
            ``Retry-After`` it asked for; 0 turns that off (each call can also pass
            ``retries=``).
        max_retry_wait_s: the longest wait honoured; an overloaded answer asking for longer is
            raised at once, as :class:`~lepton.errors.Overloaded` with its ``retry_after``.
    """

    retries: int = 3
    # 10 s: the replica asks for 1 s; a server asking for much longer is better answered
    # by the caller (who may go elsewhere) than by a call that hangs without saying why.
    max_retry_wait_s: float = 10.0

    def __init__(self, client: Client, *, http: httpx.Client | None = None) -> None:
        self._client = client
        self._tokens: dict[str, str] = {}
        self._targets: dict[str, _Target] = {}
        self._http = http
        self._owns_http = http is None

    def close(self) -> None:
        """Close the connections to the replicas (unless the client was given them)."""
        if self._http is not None and self._owns_http:
            self._http.close()
            self._http = None

    def create(
        self,
        model: str | None = None,
        *,
        photon: str | None = None,
        name: str | None = None,
        replicas: int = 1,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_inflight: float = DEFAULT_TARGET_INFLIGHT,
        scale_down_delay_s: float = 60,
        idle_timeout_s: float = 300,
        hold_timeout_s: float = 60,
        max_batch_size: int = 64,
        max_wait_ms: float = 0,
        timeout_s: float = 30,
        max_rows: int = DEFAULT_MAX_ROWS,
        cpus: float = 0,
        memory_mb: int | None = None,
        gpus: int = 0,
        public: bool = False,
        env: dict[str, str] | None = None,
        secrets: builtins.list[str] | None = None,
        wait: bool = True,
        wait_timeout_s: float = 300,
    ) -> DeploymentCreated:
        """Deploy a model version (``heart``, ``heart@3``, ``heart@production``) or a photon.
        With ``wait`` (the default) returns once every replica is ready, or raises with the
        reason it cannot start. The answer's ``token`` is the inference token: keep it, it is
        not shown again. The replicas get ``env`` and the workspace ``secrets`` named
        (``"HF_TOKEN"`` or ``"ENV=HF_TOKEN"``) as environment variables. Each replica
        reserves ``cpus``, ``memory_mb`` and ``gpus`` where it runs (a Ray node), and its
        threads and memory are capped to them. With ``max_replicas`` it autoscales between
        ``min_replicas`` (0: to zero when idle for ``idle_timeout_s``) and ``max_replicas`` on
        the requests in flight through the gateway, ``target_inflight`` per replica; a replica
        goes only after ``scale_down_delay_s`` of lower load."""
        body = {
            "name": name,
            "model": model,
            "photon": photon,
            "replicas": replicas,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_inflight": target_inflight,
            "scale_down_delay_s": scale_down_delay_s,
            "idle_timeout_s": idle_timeout_s,
            "hold_timeout_s": hold_timeout_s,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "timeout_s": timeout_s,
            "max_rows": max_rows,
            "cpus": cpus,
            "memory_mb": memory_mb,
            "gpus": gpus,
            "public": public,
            "env": env or {},
            "secrets": secrets or [],
        }
        data = self._client.request("POST", "/api/v1/deployments", json=body).json()
        created = DeploymentCreated.model_validate(data)
        if created.token:
            self._tokens[created.name] = created.token
        self._remember(created)
        if wait:
            ready = self.wait(created.name, timeout_s=wait_timeout_s)
            created = DeploymentCreated(**ready.model_dump(), token=created.token)
        return created

    def list(self) -> builtins.list[Deployment]:
        data = self._client.collect("/api/v1/deployments")
        return [Deployment.model_validate(item) for item in data]

    def get(self, name: str) -> Deployment:
        data = self._client.request("GET", f"/api/v1/deployments/{name}").json()
        return self._remember(Deployment.model_validate(data))

    def _remember(self, deployment: Deployment) -> Deployment:
        """Every answer about a deployment refreshes where ``predict`` sends."""
        self._targets[deployment.name] = _Target.of(deployment)
        return deployment

    def scale(self, name: str, replicas: int) -> Deployment:
        """Run ``replicas`` replicas; those already serving keep serving."""
        return self._patch(name, {"replicas": replicas})

    def update(
        self,
        name: str,
        *,
        model: str | None = None,
        photon: str | None = None,
        replicas: int | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_inflight: float | None = None,
        scale_down_delay_s: float | None = None,
        idle_timeout_s: float | None = None,
        hold_timeout_s: float | None = None,
        max_batch_size: int | None = None,
        max_wait_ms: float | None = None,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        cpus: float | None = None,
        memory_mb: int | None = None,
        gpus: int | None = None,
        env: dict[str, str] | None = None,
        secrets: builtins.list[str] | None = None,
        canary: float | None = None,
        canary_error_margin: float | None = None,
        canary_latency_margin: float | None = None,
        canary_window_s: float | None = None,
    ) -> Deployment:
        """Roll to a new model version, photon, batching, or variables and secrets (``env`` and
        ``secrets`` replace the current ones; ``{}`` and ``[]`` remove them): each new replica
        is ready before an old one drains. Follow it with :meth:`wait`. With ``canary`` (a
        percent) the change runs beside the serving version for that share of the gateway's
        traffic instead: :meth:`promote` or :meth:`rollback` it; it is rolled back by itself
        when its error rate or p99 is worse than the serving version's by the margins."""
        body = {
            "model": model,
            "photon": photon,
            "replicas": replicas,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_inflight": target_inflight,
            "scale_down_delay_s": scale_down_delay_s,
            "idle_timeout_s": idle_timeout_s,
            "hold_timeout_s": hold_timeout_s,
            "canary": canary,
            "canary_error_margin": canary_error_margin,
            "canary_latency_margin": canary_latency_margin,
            "canary_window_s": canary_window_s,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "timeout_s": timeout_s,
            "max_rows": max_rows,
            "cpus": cpus,
            "memory_mb": memory_mb,
            "gpus": gpus,
            "env": env,
            "secrets": secrets,
        }
        return self._patch(name, {k: v for k, v in body.items() if v is not None})

    def revisions(
        self, name: str, *, limit: int | None = None
    ) -> builtins.list[DeploymentRevision]:
        """What each generation served and why it began, newest first (the first ``limit``)."""
        data = self._client.collect(f"/api/v1/deployments/{name}/revisions", limit=limit)
        return [DeploymentRevision.model_validate(item) for item in data]

    def rollback(self, name: str, generation: int | None = None) -> Deployment:
        """Roll back to the revision before the current generation, or to ``generation``'s
        (see :meth:`revisions`): a new generation that rolls out as an update does, keeping the
        replica count. With a canary on trial (and no ``generation``), drops the canary
        instead. Follow it with :meth:`wait`."""
        data = self._client.request(
            "POST", f"/api/v1/deployments/{name}/rollback", json={"generation": generation}
        ).json()
        return self._remember(Deployment.model_validate(data))

    def promote(self, name: str) -> Deployment:
        """Make the canary the serving version (its replicas stay; the old ones are replaced
        one by one). Follow it with :meth:`wait`."""
        data = self._client.request("POST", f"/api/v1/deployments/{name}/promote").json()
        return self._remember(Deployment.model_validate(data))

    def _patch(self, name: str, body: dict[str, Any]) -> Deployment:
        data = self._client.request("PATCH", f"/api/v1/deployments/{name}", json=body).json()
        return self._remember(Deployment.model_validate(data))

    def delete(self, name: str, *, wait: bool = True, timeout_s: float = 120) -> Deployment:
        """Revoke the token and drain the replicas; with ``wait``, returns once they stopped."""
        data = self._client.request("DELETE", f"/api/v1/deployments/{name}").json()
        gone = Deployment.model_validate(data)
        self._tokens.pop(name, None)
        self._targets.pop(name, None)
        deadline = time.monotonic() + timeout_s
        while wait:
            try:
                self.get(name)
            except NotFound:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {name} still has replicas after {timeout_s} s")
            time.sleep(0.2)
        return gone

    def wait(self, name: str, *, timeout_s: float = 300, poll_s: float = 0.2) -> Deployment:
        """Block until every replica of the current generation is ready.

        Raises:
            InvalidRequest: no replica could start (the message carries its error).
            TimeoutError: still not ready after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            deployment = self.get(name)
            if deployment.state in (DeploymentState.ready, DeploymentState.idle):
                return deployment
            if deployment.state == DeploymentState.failing:
                raise InvalidRequest(
                    f"deployment '{name}' cannot start: {deployment.error}",
                    fix=f"read its log (lepton deployment logs {name}); fix it with "
                    f"`lepton deployment update {name} ...` or remove it: "
                    f"lepton deployment rm {name}",
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"deployment {name} is {deployment.state} after {timeout_s} s "
                    f"({deployment.ready_replicas} of {deployment.replicas} replicas ready)"
                )
            time.sleep(poll_s)

    def logs(self, name: str, offset: int = 0) -> LogChunk:
        data = self._client.request(
            "GET", f"/api/v1/deployments/{name}/logs", params={"offset": offset}
        )
        return LogChunk.model_validate(data.json())

    def follow(self, name: str, *, poll_s: float = 0.5) -> Iterator[str]:
        """Yield new log text until the deployment is deleted."""
        offset = 0
        while True:
            try:
                chunk = self.logs(name, offset)
            except NotFound:
                return
            offset = chunk.offset
            if chunk.text:
                yield chunk.text
            if chunk.complete:
                return
            if not chunk.text:
                time.sleep(poll_s)

    def traffic(self, name: str, minutes: int = 60) -> DeploymentTraffic:
        """Requests, errors, refusals and p50/p95/p99 latency over the last ``minutes`` (at
        most 60), in 10-second windows summed over the replicas."""
        data = self._client.request(
            "GET", f"/api/v1/deployments/{name}/traffic", params={"minutes": minutes}
        )
        return DeploymentTraffic.model_validate(data.json())

    # --- inference, straight to the replicas ------------------------------------------------

    def predict(
        self,
        name: str,
        rows: builtins.list[dict[str, Any]] | None = None,
        *,
        columns: dict[str, builtins.list[Any]] | None = None,
        inputs: Any = None,
        images: builtins.list[bytes | Path] | None = None,
        token: str | None = None,
        retries: int | None = None,
    ) -> Any:
        """``POST /predict`` on the deployment: give ``rows`` (a list of dicts), ``columns``
        (a dict of lists), ``inputs`` (an array in the signature's column order) or, for an
        image model, ``images`` (PNG or JPEG files or their bytes: the replica converts, resizes
        and scales them as the model was trained). ``retries``: how many times an overloaded
        answer is retried (default :attr:`retries`; 0: never).

        Raises:
            Overloaded: the replicas' queues stayed full through the retries.
            HandlerTimeout: the model ran past the deployment's timeout (not retried).
            HandlerError: the model failed on this request's batch (not retried).
            ConnectionFailed: no replica could be reached, after asking the control plane
                where the deployment is and trying once more.
        """
        if images is not None:
            if rows is not None or columns is not None or inputs is not None:
                raise InvalidRequest("give images alone", fix="predict(name, images=[...])")
            files = [
                (f"image{i}", image.read_bytes() if isinstance(image, Path) else image)
                for i, image in enumerate(images)
            ]
            return self._call(name, "/predict", None, token, retries, files=files)
        return self._call(name, "/predict", _payload(rows, columns, inputs), token, retries)

    def explain(
        self,
        name: str,
        rows: builtins.list[dict[str, Any]] | None = None,
        *,
        columns: dict[str, builtins.list[Any]] | None = None,
        inputs: Any = None,
        token: str | None = None,
        target: Any = None,
        overlay: bool = False,
        retries: int | None = None,
    ) -> Any:
        """``POST /explain``: feature attributions for the same inputs as :meth:`predict`,
        explaining class ``target`` (default: the predicted one); ``overlay`` adds a PNG of
        each image's saliency (base64). Retries and errors as :meth:`predict`."""
        query = {"class": None if target is None else str(target), "overlay": overlay or None}
        return self._call(name, "/explain", _payload(rows, columns, inputs), token, retries, query)

    def _call(
        self,
        name: str,
        path: str,
        body: dict[str, Any] | None,
        token: str | None,
        retries: int | None,
        query: dict[str, Any] | None = None,
        files: builtins.list[tuple[str, bytes]] | None = None,
    ) -> Any:
        from lepton.client.client import _error_from

        retries = self.retries if retries is None else retries
        target = self._targets.get(name) or _Target.of(self.get(name))
        asked_again = False  # where the deployment is: asked of the control plane once more
        overloaded = 0
        while True:
            try:
                response = self._send(name, target, path, body, token, query, files)
            except httpx.TransportError as exc:
                if asked_again or isinstance(exc, httpx.ReadTimeout):
                    raise _unreachable(name, target, exc) from None
                asked_again = True
                target = self._ask_again(name, target)
                continue
            if response.status_code < 400:
                return response.json()
            error = _error_from(response)
            if isinstance(error, Overloaded) and overloaded < retries:
                wait = _overload_wait(error.retry_after, overloaded)
                if wait <= self.max_retry_wait_s:
                    overloaded += 1
                    # Up to a quarter more, so callers turned away together come back apart.
                    _sleep(min(self.max_retry_wait_s, wait * random.uniform(1.0, 1.25)))
                    continue
            if response.status_code in (401, 404) and not asked_again:
                # Another deployment on the old port, or a new token: retry only if it moved.
                asked_again = True
                moved = self._ask_again(name, target)
                if moved != target:
                    target = moved
                    continue
            raise error

    def _ask_again(self, name: str, target: _Target) -> _Target:
        """Where the deployment answers now; the last known place while the control plane
        cannot be reached (the replicas may well be up: inference does not need it)."""
        try:
            return _Target.of(self.get(name))
        except ConnectionFailed:
            return target
        except NotFound:
            self._targets.pop(name, None)
            raise

    def _send(
        self,
        name: str,
        target: _Target,
        path: str,
        body: dict[str, Any] | None,
        token: str | None,
        query: dict[str, Any] | None,
        files: builtins.list[tuple[str, bytes]] | None,
    ) -> httpx.Response:
        token = token or self._tokens.get(name)
        if not target.public and token is None:
            raise ConfigError(
                f"deployment '{name}' needs its inference token",
                fix="pass token=... (lepton deploy printed it), or deploy with public=True",
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self._http is None:
            self._http = httpx.Client()
        params = {k: str(v).lower() if isinstance(v, bool) else v
                  for k, v in (query or {}).items() if v is not None}  # fmt: skip
        return self._http.post(
            target.url + path,
            json=body,
            files=[(field, (field, data)) for field, data in files] if files else None,
            headers=headers,
            params=params,
            # 10 s past the deployment's own timeout, so that its 504 arrives before we give up.
            timeout=target.timeout_s + 10,
        )


def _overload_wait(retry_after: float | None, attempt: int) -> float:
    """Seconds to wait before sending an overloaded request again: what the replica asked,
    else 0.5, 1, 2, ... s."""
    return retry_after if retry_after is not None else 0.5 * 2**attempt


def _unreachable(name: str, target: _Target, exc: httpx.TransportError) -> ConnectionFailed:
    if isinstance(exc, httpx.ReadTimeout):
        return ConnectionFailed(
            f"deployment '{name}' at {target.url} did not answer within "
            f"{target.timeout_s + 10:g} s",
            fix=f"raise its timeout (lepton deployment update {name} --timeout ...), "
            "or send fewer rows at once",
        )
    return ConnectionFailed(
        f"cannot reach deployment '{name}' at {target.url}: {exc}",
        fix=f"is it ready? lepton deployment show {name}",
    )


def _payload(rows: Any, columns: Any, inputs: Any) -> dict[str, Any]:
    given = {
        k: v for k, v in (("rows", rows), ("columns", columns), ("inputs", inputs)) if v is not None
    }
    if len(given) != 1:
        raise InvalidRequest(
            "give exactly one of rows, columns and inputs",
            fix="e.g. predict('heart', [{'age': 61, 'chol': 230}])",
        )
    return given


class Photons:
    def __init__(self, client: Client) -> None:
        self._client = client

    def push(
        self, path: str | os.PathLike[str], *, entry: str | None = None, name: str | None = None
    ) -> Photon:
        """Package a folder (``entry`` names ``file.py:Class`` in it) or ``file.py:Class`` (its
        folder is packaged) and push it: source and manifest only, never a pickle."""
        source, entry = _source(str(path), entry)
        from lepton.photon.package import build_package

        archive, _manifest = build_package(source, entry)
        try:
            return self.push_bytes(archive.read_bytes(), name=name)
        finally:
            archive.unlink(missing_ok=True)

    def push_bytes(self, package: bytes, *, name: str | None = None) -> Photon:
        """Push an already built package (a zip with ``manifest.json``)."""
        data = self._client.request(
            "POST", "/api/v1/photons", content=package, params={"name": name}
        ).json()
        return Photon.model_validate(data)

    def list(self) -> builtins.list[Photon]:
        data = self._client.collect("/api/v1/photons")
        return [Photon.model_validate(item) for item in data]

    def get(self, ref: str) -> Photon:
        """A photon by ``name`` (latest), ``name@N`` or its package's sha256."""
        if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
            match = [p for p in self.list() if p.digest == ref]
            if not match:
                raise NotFound(f"no photon with digest {ref}", fix="lepton photon list")
            return match[0]
        name, _, version = ref.partition("@")
        data = self._client.request(
            "GET", f"/api/v1/photons/{name}", params={"version": version or "latest"}
        ).json()
        return Photon.model_validate(data)

    def delete(self, name: str, *, version: str | None = None) -> builtins.list[Photon]:
        """Delete a photon's versions (or one); refused while a deployment serves one."""
        data = self._client.request(
            "DELETE", f"/api/v1/photons/{name}", params={"version": version}
        ).json()
        return [Photon.model_validate(item) for item in data]


def _source(path: str, entry: str | None) -> tuple[Path, str]:
    """``DIR`` + ``entry``, or ``file.py:Class`` → (its folder, ``file.py:Class``)."""
    if entry is None and ":" in path and not Path(path).is_dir():
        file, _, cls = path.rpartition(":")
        return Path(file).resolve().parent, f"{Path(file).name}:{cls}"
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(
            f"{path} is not a folder or FILE.py:Class",
            fix="lepton photon push DIR -m app.py:MyPhoton",
        )
    if entry is None:
        raise ConfigError(
            f"which class in {path} serves? the entry is missing", fix="pass -m file.py:Class"
        )
    return folder, entry
