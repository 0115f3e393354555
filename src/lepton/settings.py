"""Settings from ``LEPTON_*`` environment variables: the only reader of ``os.environ``.

Every value has a default that works on a laptop; scale-out is three variables
(``LEPTON_DATABASE_URL``, ``LEPTON_STORAGE_URL``, ``LEPTON_EXECUTOR=ray`` with
``LEPTON_RAY_ADDRESS``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from lepton.credentials import clean_token
from lepton.errors import ConfigError

__all__ = ["Settings"]

_PREFIX = "LEPTON_"


def _default_home() -> Path:
    return Path("~/.lepton").expanduser()


@dataclass(frozen=True)
class Settings:
    """Platform settings. Build with :meth:`from_env`; tests pass values directly."""

    home: Path = field(default_factory=_default_home)
    """State directory: database, blobs, encryption key, credentials."""
    host: str = "127.0.0.1"
    """Address the control plane listens on."""
    port: int = 8700
    """Port the control plane listens on."""
    database_url: str = ""
    """SQLAlchemy URL of the metadata store; empty means SQLite in ``home``."""
    storage_url: str = ""
    """fsspec URL of the blob store (``s3://bucket/prefix``); empty means a folder in ``home``."""
    encryption_key: str = ""
    """Base64 AES-256 key for blobs at rest; empty means the key file in ``home``."""
    max_upload_bytes: int = 10 * 1024**3
    """Largest accepted upload; larger bodies get 413."""
    job_slots: int = 1
    """Jobs that run at once on this machine (1: two cores are one training job's worth)."""
    url: str = ""
    """Control-plane URL the SDK and CLI talk to; empty means the credentials file."""
    token: str = ""
    """Bearer token the SDK and CLI use; empty means the credentials file."""
    credentials: Path | None = None
    """Credentials file; ``None`` means ``home/credentials.json``."""
    sandbox: str = "auto"
    """How user code (job runners, replicas) is contained: ``auto`` (bubblewrap when it works),
    ``required`` (refuse to start without it), ``bubblewrap``, or ``none``."""
    user_memory_mb: int = field(default_factory=lambda: _default_memory_mb())
    """Data-segment limit of each job runner and replica, in MiB (0: none); by default three
    quarters of the machine's memory."""
    user_environment: Mapping[str, str] = field(default_factory=lambda: _allowed_environment())
    """The machine's variables user code may see: locale, time zone, PATH, BLAS threading. Not
    read from a ``LEPTON_*`` variable: it is what the control plane was started with."""
    replica_token_hashes: str = ""
    """Comma-separated sha256 digests of the tokens a serving replica accepts (set by the
    deployment supervisor; never on the command line, which other users can read)."""
    traffic_interval_s: float = 5.0
    """Seconds between a replica's traffic reports to the supervisor (a line on its output, only
    when its counters changed); 0: none, and no traffic is shown."""
    node_ip: str = ""
    """Address of the machine a replica or job runner runs on, set by the Ray executor: a
    replica's own port (the gateway's way to it) listens there, reachable from other nodes."""
    gateway_port: int = 8710
    """Port of the gateway, where every deployment answers at ``/d/<name>/``: 0 for any free
    one, -1 for no gateway."""
    gateway_secret: str = ""
    """What the gateway authenticates to the control plane with: set by the control plane for
    the gateway process it starts, never by a user."""
    gateway_metrics_token: str = ""
    """Bearer a scraper reads the gateway's ``/metrics`` (every deployment) with; empty: only
    ``/metrics/d/<name>``, with that deployment's token."""
    executor: str = "local"
    """Where job runners and replicas run: ``local`` (subprocesses of this machine) or ``ray``
    (actors on the Ray cluster at ``ray_address``; needs ``pip install 'lepton[ray]'``)."""
    ray_address: str = ""
    """Address of an existing Ray cluster (``HOST:6379``); empty with the Ray executor means the
    head ``lepton up --ray`` started for this ``home``."""
    advertise_url: str = ""
    """URL of the control plane as job runners and replicas on other machines reach it; empty
    means :attr:`local_url` (enough while everything runs on this machine)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``LEPTON_<FIELD>`` variables, without the whitespace around their values (a
        token pasted with its newline); explicit ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "user_environment":
                continue
            raw = env.get(_PREFIX + f.name.upper(), "").strip()
            if raw == "":
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        if "token" in values:
            values["token"] = clean_token(
                str(values["token"]),
                f"{_PREFIX}TOKEN",
                fix=f"set {_PREFIX}TOKEN to a token as `lepton token create` printed it, or unset it",
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def database(self) -> str:
        """The effective database URL."""
        return self.database_url or f"sqlite:///{self.home / 'lepton.db'}"

    @property
    def storage(self) -> str:
        """The effective blob-store URL."""
        return self.storage_url or str(self.home / "blobs")

    @property
    def credentials_path(self) -> Path:
        """Where the CLI and SDK keep the URL and token."""
        return self.credentials or self.home / "credentials.json"

    @property
    def key_path(self) -> Path:
        """Where the generated encryption key lives."""
        return self.home / "encryption.key"

    @property
    def local_url(self) -> str:
        """URL a client on this machine uses to reach the control plane."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def worker_url(self) -> str:
        """URL job runners use to reach the control plane: the advertised one, else local."""
        return self.advertise_url.rstrip("/") or self.local_url


_ALLOWED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}
)
_ALLOWED_PREFIXES = ("LC_", "OPENBLAS_")  # OPENBLAS_CORETYPE keeps old OpenBLAS builds correct


def _allowed_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _ALLOWED or k.startswith(_ALLOWED_PREFIXES)}


def _default_memory_mb() -> int:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0
    return int(pages * size * 3 / 4 / (1024 * 1024))


def _convert(name: str, kind: object, raw: str) -> object:
    text = str(kind)
    try:
        if text == "int":
            return int(raw)
        if text == "float":
            return float(raw)
        if "Path" in text:
            return Path(raw).expanduser()
    except ValueError:
        what, example = ("a whole number", "an integer such as 8700")
        if text == "float":
            what, example = ("a number", "a number such as 0.5")
        raise ConfigError(
            f"{_PREFIX}{name.upper()}={raw!r} is not {what}",
            fix=f"set {_PREFIX}{name.upper()} to {example}, or unset it",
        ) from None
    return raw
