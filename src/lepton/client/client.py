"""The SDK's HTTP core: finds the server and token, sends the API version, maps errors.

``Client()`` with no arguments reads ``LEPTON_URL``/``LEPTON_TOKEN`` and falls back on the
credentials file that ``lepton up`` and ``lepton login`` write. Pass ``http=`` to run the SDK
against any ``httpx.Client`` (tests use Starlette's in-process ``TestClient``).
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from lepton._version import __version__
from lepton.credentials import read_credentials
from lepton.errors import (
    APIVersionMismatch,
    BlobIntegrityError,
    ConnectionFailed,
    LeptonError,
    Overloaded,
    ServerError,
    error_for_code,
)
from lepton.schemas import API_VERSION, API_VERSION_HEADER, Health, Status
from lepton.settings import Settings

__all__ = ["CHUNK", "Client", "Progress"]

CHUNK = 1 << 20  # 1 MiB: large enough to amortise per-chunk overhead, small enough to stream
Progress = Callable[[int], None]


_PAGE = 1000  # items per request when listing: the server's largest page
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Client:
    """A connection to a Lepton control plane.

    Args:
        url: Control-plane URL; defaults to ``LEPTON_URL``, then the credentials file.
        token: Bearer token; defaults to ``LEPTON_TOKEN``, then the credentials file.
        settings: Settings to read defaults from (``Settings.from_env()`` when omitted).
        http: An ``httpx.Client`` to send requests through (the transport seam).
        timeout: Seconds to wait for the server on each request.
        replica_http: An ``httpx.Client`` for ``predict`` and ``explain``, which go straight to
            a deployment's replicas (the transport seam of inference); one of its own when
            omitted.
        reconnect_s: For this long, a request the server could not take is sent again (with
            backoff from 0.25 s to 5 s): one whose connection was refused, which never reached
            a server, and a read (GET, PUT, DELETE) whose answer was cut. 0 (the default): the
            first failure raises ``ConnectionFailed``. A job's runner waits out a control-plane
            restart this way.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        http: httpx.Client | None = None,
        timeout: float = 60.0,
        replica_http: httpx.Client | None = None,
        reconnect_s: float = 0.0,
    ) -> None:
        settings = settings or Settings.from_env()
        url = (url or settings.url or "").rstrip("/") or None
        token = token or settings.token or None
        if url is None or token is None:
            saved = read_credentials(settings.credentials_path)
            if saved is not None:
                url = url or saved.url.rstrip("/")
                # A saved token belongs to its own server; never send it to another one.
                token = token or (saved.token if saved.url.rstrip("/") == url else None)
        if url is None:
            raise ConnectionFailed(
                "no Lepton server is configured",
                fix="start one on this machine with `lepton up`, or run "
                "`lepton login --url URL --token TOKEN` (or set LEPTON_URL and LEPTON_TOKEN)",
            )
        self.url = url.rstrip("/")
        self.token = token
        self._http = http or httpx.Client(base_url=self.url, timeout=timeout)
        self._owns_http = http is None
        self.reconnect_s = reconnect_s

        from lepton.client.datasets import Datasets
        from lepton.client.deployments import Deployments, Photons
        from lepton.client.jobs import Jobs, Models
        from lepton.client.resources import Audit, Blobs, Tokens, Workspaces
        from lepton.client.secrets import Secrets

        self.workspaces = Workspaces(self)
        self.tokens = Tokens(self)
        self.secrets = Secrets(self)
        self.audit = Audit(self)
        self.blobs = Blobs(self)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.deployments = Deployments(self, http=replica_http)
        self.photons = Photons(self)

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pools (the control plane's only if this client created it)."""
        self.deployments.close()
        if self._owns_http:
            self._http.close()

    def health(self) -> Health:
        """Whether the server answers; needs no token."""
        return Health.model_validate(self.request("GET", "/healthz").json())

    def status(self) -> Status:
        """The server's version and stores, and who this client's token is."""
        return Status.model_validate(self.request("GET", "/api/v1/status").json())

    def _headers(self) -> dict[str, str]:
        headers = {API_VERSION_HEADER: str(API_VERSION), "User-Agent": f"lepton/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(
        self, request: httpx.Request, *, replayable: bool, repeatable: bool
    ) -> httpx.Response:
        """Send, trying again for `reconnect_s` where that cannot apply a change twice."""
        deadline = time.monotonic() + self.reconnect_s
        wait = 0.25
        while True:
            try:
                return self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                # Refused: nothing reached a server. Cut: only a read is safe to send again.
                again = isinstance(exc, httpx.ConnectError) or (repeatable and replayable)
                if not again or time.monotonic() + wait > deadline:
                    raise ConnectionFailed(
                        f"cannot reach the Lepton server at {self.url}: {exc}",
                        fix="start it with `lepton up`, or check the URL (lepton login --url ...)",
                    ) from None
            time.sleep(wait)
            wait = min(wait * 2, 5.0)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        repeatable: bool = False,
    ) -> httpx.Response:
        """Send a request and return the response; any error status raises a ``LeptonError``.
        ``timeout`` overrides the client's for this request (a push that the server profiles
        for minutes waits with ``httpx.Timeout(60, read=None)``)."""
        with self.stream(
            method,
            path,
            json=json,
            params=params,
            content=content,
            headers=headers,
            timeout=timeout,
            repeatable=repeatable,
        ) as r:
            r.read()
            return r

    def collect(
        self, path: str, params: Mapping[str, Any] | None = None, *, limit: int | None = None
    ) -> list[Any]:
        """Every item of a paged list (or the first ``limit``), following the server's
        ``Link: <...>; rel="next"`` header page after page."""
        items: list[Any] = []
        query = {k: v for k, v in (params or {}).items() if v is not None}
        while limit is None or len(items) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(items))
            response = self.request("GET", path, params={**query, "limit": page})
            items.extend(response.json())
            after = response.links.get("next", {}).get("url")
            if not after:
                break
            query["after"] = httpx.URL(after).params["after"]
        return items

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        repeatable: bool = False,
    ) -> Iterator[httpx.Response]:
        """Like :meth:`request`, but the body is read as the caller iterates it. ``repeatable``
        marks a write that may be applied twice (with ``reconnect_s``, a cut one is sent again)."""
        all_headers = self._headers() | dict(headers or {})
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        request = self._http.build_request(
            method,
            self.url + path,
            json=json,
            params=clean_params,
            content=content,
            headers=all_headers,
            timeout=timeout if timeout is not None else self._http.timeout,
        )
        response = self._send(
            request,
            replayable=content is None or isinstance(content, bytes),
            repeatable=repeatable or request.method in _IDEMPOTENT,
        )
        try:
            if response.status_code >= 400:
                response.read()
                raise _error_from(response)
            _check_version(response)
            yield response
        finally:
            response.close()

    def download(
        self,
        path: str,
        target: Path,
        *,
        digest: str | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Stream ``GET path`` into ``target``. The file appears only once it is complete and,
        when ``digest`` is given, only if its bytes hash to it."""
        hasher = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f, self.stream("GET", path) as response:
                try:
                    for chunk in response.iter_bytes(CHUNK):
                        if digest is not None:
                            hasher.update(chunk)
                        f.write(chunk)
                        if progress:
                            progress(len(chunk))
                except httpx.HTTPError as exc:  # the server cuts a stream it cannot verify
                    raise BlobIntegrityError(
                        f"{path} could not be read whole ({exc})",
                        fix="retry; if it fails again the stored copy is damaged",
                    ) from None
            if digest is not None and hasher.hexdigest() != digest:
                raise BlobIntegrityError(
                    f"downloaded bytes hash to {hasher.hexdigest()}, not {digest}",
                    fix="retry; if it fails again the stored copy is damaged",
                )
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


def _check_version(response: httpx.Response) -> None:
    server = response.headers.get(API_VERSION_HEADER)
    if server is not None and server != str(API_VERSION):
        raise APIVersionMismatch(
            f"the server speaks API version {server}, this client speaks {API_VERSION}",
            fix="install the lepton package version that matches the server",
        )


def _error_from(response: httpx.Response) -> LeptonError:
    try:
        detail = response.json()["error"]
        code, message, fix = str(detail["code"]), str(detail["message"]), str(detail["fix"])
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500] or response.reason_phrase
        if response.status_code >= 500:
            return ServerError(
                f"the server failed with HTTP {response.status_code}: {text}",
                fix="this is a bug in Lepton; please report it with the server log",
            )
        return error_for_code("", response.status_code)(f"HTTP {response.status_code}: {text}")
    error = error_for_code(code, response.status_code)(message, fix=fix)
    if isinstance(error, Overloaded):
        error.retry_after = retry_after(response)
    return error


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number, or an HTTP date measured from
    ``now``), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is in GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
