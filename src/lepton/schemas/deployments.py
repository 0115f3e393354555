"""Deployments: their revisions, replicas and traffic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from lepton.limits import DEFAULT_MAX_ROWS, MAX_ROWS_CEILING
from lepton.schemas.common import _Model
from lepton.schemas.env import UserEnv, UserSecrets, _one_source_per_variable

DEPLOYMENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Lower-case letters, digits and dashes: fits a host name and a URL path."""
DEFAULT_TARGET_INFLIGHT = 8.0
"""Requests in flight per replica that autoscaling aims at: enough to fill the batcher of a
small model (batches of a few requests) without queueing behind many."""


class ReplicaState(StrEnum):
    starting = "starting"
    ready = "ready"
    draining = "draining"
    crashed = "crashed"


class DeploymentState(StrEnum):
    starting = "starting"
    ready = "ready"
    updating = "updating"
    degraded = "degraded"
    failing = "failing"
    deleting = "deleting"
    idle = "idle"
    """Scaled to zero: the gateway's next request starts a replica."""


class DeploymentCreate(_Model):
    """Serves exactly one of ``model`` and ``photon``."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [key], "properties": {key: {"type": "string"}}}
                for key in ("model", "photon")
            ]
        }
    )

    name: Annotated[str, Field(pattern=DEPLOYMENT_NAME_PATTERN)] | None = Field(
        default=None, description="Deployment name; the model's or photon's name by default."
    )
    model: str | None = Field(
        default=None,
        max_length=140,
        description="Model reference: `heart`, `heart@3`, `heart@production`.",
    )
    photon: str | None = Field(
        default=None,
        max_length=140,
        description="Photon reference: `name`, `name@2`, or its sha256.",
    )
    replicas: Annotated[int, Field(ge=1, le=32)] = Field(
        default=1,
        description="Replica processes (with autoscaling: how many start, within its bounds).",
    )
    min_replicas: Annotated[int, Field(ge=0, le=32)] | None = Field(
        default=None,
        description="Autoscale from this many replicas (0: scale to zero when idle; the "
        "gateway holds the first request while a replica starts). Needs max_replicas.",
    )
    max_replicas: Annotated[int, Field(ge=1, le=32)] | None = Field(
        default=None,
        description="Autoscale up to this many replicas on the load through the gateway; None: "
        "a fixed count.",
    )
    target_inflight: Annotated[float, Field(gt=0, le=10_000)] = Field(
        default=DEFAULT_TARGET_INFLIGHT,
        description="Requests in flight per replica that autoscaling aims at.",
    )
    scale_down_delay_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60,
        description="Quiet period: the load must have asked for fewer replicas this long "
        "before one goes.",
    )
    idle_timeout_s: Annotated[float, Field(ge=1, le=7 * 86_400)] = Field(
        default=300,
        description="With min_replicas 0: seconds without a request before the last replica goes.",
    )
    hold_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=60,
        description="How long the gateway holds a request while no replica is ready (then 503).",
    )
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=64, description="Most requests one model call takes at once."
    )
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = Field(
        default=0, description="How long a batch may wait to fill; 0: never wait."
    )
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30, description="Longest a request may run once taken."
    )
    max_rows: Annotated[int, Field(ge=1, le=MAX_ROWS_CEILING)] = Field(
        default=DEFAULT_MAX_ROWS,
        description="Most rows (examples) one /predict or /explain request may carry; more get "
        "413. Bounds a replica's memory per request. Model deployments only.",
    )
    cpus: Annotated[float, Field(ge=0, le=256)] = Field(
        default=0,
        description="CPU cores each replica reserves on a Ray node (0: none) and caps its "
        "threads at (1 or more).",
    )
    memory_mb: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] | None = Field(
        default=None,
        description="Memory each replica needs, MiB: reserved on a Ray node, and its data "
        "segment capped to it. None: no reservation, the machine's default cap.",
    )
    gpus: Annotated[int, Field(ge=0, le=16)] = Field(
        default=0, description="GPUs each replica gets (CUDA_VISIBLE_DEVICES)."
    )
    public: bool = Field(
        default=False, description="Serve without a token. Off by default: a token is minted."
    )
    env: UserEnv = Field(
        default_factory=dict,
        description="Environment variables the replicas get (not `LEPTON_*`); shown with the "
        "deployment, so not for secrets.",
    )
    secrets: UserSecrets = Field(
        default_factory=list,
        description="Workspace secrets the replicas get as variables: `NAME` or `ENV=NAME`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DeploymentCreate:
        _one_source_per_variable(self.env, self.secrets)
        _bounds(self.min_replicas, self.max_replicas)
        return self


def _bounds(low: int | None, high: int | None) -> None:
    if low is not None and high is None:
        raise ValueError("min_replicas needs max_replicas: give both to autoscale")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min_replicas ({low}) is above max_replicas ({high})")


class DeploymentUpdate(_Model):
    replicas: Annotated[int, Field(ge=1, le=32)] | None = Field(
        default=None,
        description="Scale to this many replicas (no restart); turns autoscaling off.",
    )
    min_replicas: Annotated[int, Field(ge=0, le=32)] | None = Field(
        default=None, description="Autoscale from this many replicas (0: scale to zero)."
    )
    max_replicas: Annotated[int, Field(ge=1, le=32)] | None = Field(
        default=None, description="Autoscale up to this many replicas."
    )
    target_inflight: Annotated[float, Field(gt=0, le=10_000)] | None = Field(
        default=None, description="Requests in flight per replica autoscaling aims at."
    )
    scale_down_delay_s: Annotated[float, Field(ge=0, le=86_400)] | None = Field(
        default=None, description="Autoscaling's quiet period before a replica goes."
    )
    idle_timeout_s: Annotated[float, Field(ge=1, le=7 * 86_400)] | None = Field(
        default=None, description="Seconds without a request before scaling to zero."
    )
    hold_timeout_s: Annotated[float, Field(gt=0, le=600)] | None = Field(
        default=None, description="How long the gateway holds a request for a replica."
    )
    canary: Annotated[float, Field(gt=0, lt=100)] | None = Field(
        default=None,
        description="Percent of the gateway's traffic for the change, as a canary beside the "
        "serving version, instead of rolling it out: promote or roll it back later (it is "
        "rolled back by itself when it answers worse). Needs a change that rolls.",
    )
    canary_error_margin: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="Roll the canary back when its error rate passes the stable version's by "
        "more than this (0.05: 5 points).",
    )
    canary_latency_margin: Annotated[float, Field(ge=1, le=100)] | None = Field(
        default=None,
        description="... or its p99 latency passes the stable version's times this.",
    )
    canary_window_s: Annotated[float, Field(ge=5, le=3600)] | None = Field(
        default=None, description="The window the canary is judged over."
    )
    model: str | None = Field(
        default=None, max_length=140, description="Serve this model version instead (rolls)."
    )
    photon: str | None = Field(
        default=None, max_length=140, description="Serve this photon instead (rolls)."
    )
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] | None = Field(
        default=None, description="New batch size (rolls)."
    )
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] | None = Field(
        default=None, description="New batch wait (rolls)."
    )
    timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = Field(
        default=None, description="New request timeout (rolls)."
    )
    max_rows: Annotated[int, Field(ge=1, le=MAX_ROWS_CEILING)] | None = Field(
        default=None, description="New row limit per request (rolls)."
    )
    cpus: Annotated[float, Field(ge=0, le=256)] | None = Field(
        default=None, description="New CPU reservation per replica (rolls)."
    )
    memory_mb: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] | None = Field(
        default=None, description="New memory per replica, MiB (rolls)."
    )
    gpus: Annotated[int, Field(ge=0, le=16)] | None = Field(
        default=None, description="New GPUs per replica (rolls)."
    )
    env: UserEnv | None = Field(
        default=None, description="Replace the replicas' variables (rolls when they change)."
    )
    secrets: UserSecrets | None = Field(
        default=None, description="Replace the replicas' secrets, by name (rolls when they change)."
    )

    @model_validator(mode="after")
    def _autoscale(self) -> DeploymentUpdate:
        if self.replicas is not None and (
            self.min_replicas is not None or self.max_replicas is not None
        ):
            raise ValueError(
                "replicas sets a fixed count and min/max_replicas autoscale: give one of them"
            )
        if self.min_replicas is not None and self.max_replicas is not None:
            _bounds(self.min_replicas, self.max_replicas)
        return self


class DeploymentRevision(_Model):
    generation: int = Field(description="The generation this revision began.")
    current: bool = Field(description="True for the generation the deployment runs now.")
    reason: str = Field(
        description="Why it began: `created`, `updated model`, `rolled back to generation 2`."
    )
    model: str | None = Field(description="Model version served, `name@N`.")
    photon: str | None = Field(description="Photon served, `name@N`; None once deleted.")
    requested: str = Field(description="The reference as given (`heart@production`).")
    available: bool = Field(
        description="False once what it served has been deleted: it cannot be rolled back to."
    )
    max_batch_size: int = Field(description="Most requests per model call.")
    max_wait_ms: float = Field(description="Batch wait.")
    timeout_s: float = Field(description="Request timeout.")
    max_rows: int = Field(default=DEFAULT_MAX_ROWS, description="Most rows one request may carry.")
    cpus: float = Field(default=0, description="CPU cores each replica reserves.")
    memory_mb: int | None = Field(default=None, description="Memory each replica needs, MiB.")
    gpus: int = Field(default=0, description="GPUs each replica gets.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables the replicas got.")
    secrets: list[str] = Field(
        default_factory=list, description="Secrets the replicas got, by name; never their values."
    )
    created_at: datetime = Field(description="When it began (UTC).")
    created_by: str | None = Field(description="Id of the token that began it.")


class DeploymentRollback(_Model):
    generation: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None,
        description="Roll back to this generation's revision; by default the one before the "
        "current generation.",
    )


class Replica(_Model):
    id: str = Field(description="Replica id; its output is tagged with it in the logs.")
    generation: int = Field(description="Deployment generation it serves.")
    state: ReplicaState = Field(description="starting, ready, draining or crashed.")
    pid: int | None = Field(description="Process id while it runs.")
    restarts: int = Field(description="Times it was started again after a crash.")
    last_error: str | None = Field(description="How it last ended, with its last output.")
    restart_at: datetime | None = Field(description="When a crashed replica starts again (UTC).")
    started_at: datetime | None = Field(description="Last started (UTC).")
    ready_at: datetime | None = Field(description="Last became ready (UTC).")


class Autoscaling(_Model):
    min_replicas: int = Field(description="Fewest replicas (0: scales to zero when idle).")
    max_replicas: int = Field(description="Most replicas.")
    target_inflight: float = Field(description="Requests in flight per replica aimed at.")
    scale_down_delay_s: float = Field(description="Quiet period before a replica goes.")
    idle_timeout_s: float = Field(description="Seconds idle before scaling to zero.")
    hold_timeout_s: float = Field(description="Longest the gateway holds a request.")
    last_decision: str | None = Field(description="The last scaling decision and its reason.")
    decided_at: datetime | None = Field(description="When it was made (UTC).")


class Canary(_Model):
    generation: int = Field(description="The generation on trial.")
    share: float = Field(description="Percent of the gateway's requests it gets.")
    model: str | None = Field(description="Model version it serves, `name@N`.")
    photon: str | None = Field(description="Photon it serves, `name@N`.")
    ready_replicas: int = Field(description="Its replicas that are ready.")
    error_margin: float = Field(description="Error-rate margin over stable before rollback.")
    latency_margin: float = Field(description="p99 ratio over stable before rollback.")
    window_s: float = Field(description="Window it is judged over.")


class Deployment(_Model):
    name: str = Field(description="Deployment name.")
    id: str = Field(description="Deployment id; its inference token is scoped to it.")
    url: str = Field(description="Where the replicas answer: POST {url}/predict.")
    public: bool = Field(description="True when anyone may call it without a token.")
    state: DeploymentState = Field(description="Summary of the replicas against the desired state.")
    source: Literal["model", "photon"] = Field(description="What it serves.")
    model: str | None = Field(description="Model version served, `name@N`.")
    photon: str | None = Field(description="Photon served, `name@N`.")
    requested: str = Field(description="The reference as given (`heart@production`).")
    replicas: int = Field(description="Desired replicas.")
    ready_replicas: int = Field(description="Replicas of the current generation that are ready.")
    generation: int = Field(description="Bumped by each update that restarts replicas.")
    gateway_url: str | None = Field(
        default=None,
        description="Its stable address through the gateway (POST {gateway_url}/predict); "
        "None while no gateway runs.",
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="The autoscaler's bounds and last decision; None: fixed."
    )
    canary: Canary | None = Field(default=None, description="The version on trial, if any.")
    max_batch_size: int = Field(description="Most requests per model call.")
    max_wait_ms: float = Field(description="Batch wait.")
    timeout_s: float = Field(description="Request timeout.")
    max_rows: int = Field(default=DEFAULT_MAX_ROWS, description="Most rows one request may carry.")
    cpus: float = Field(default=0, description="CPU cores each replica reserves.")
    memory_mb: int | None = Field(default=None, description="Memory each replica needs, MiB.")
    gpus: int = Field(default=0, description="GPUs each replica gets.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables the replicas get.")
    secrets: list[str] = Field(
        default_factory=list, description="Secrets the replicas get, by name; never their values."
    )
    token_id: str | None = Field(description="Id of the inference token; None when public.")
    error: str | None = Field(description="Why it cannot serve, when it cannot.")
    replica_states: list[Replica] = Field(description="Each replica, as last observed.")
    created_at: datetime = Field(description="Created (UTC).")
    updated_at: datetime = Field(description="Last changed (UTC).")


class DeploymentCreated(Deployment):
    token: str | None = Field(
        description="The inference token, shown only in this answer; None when public."
    )


class TrafficPoint(_Model):
    start: datetime = Field(description="Start of the window (UTC).")
    requests: int = Field(description="Requests answered in the window, whatever their status.")
    requests_per_s: float = Field(description="`requests` over the window's length.")
    errors: int = Field(description="Answers with a 5xx status: the deployment failed them.")
    rejected: int = Field(
        description="Answers with a 4xx status: refused requests (no token, bad input, too large)."
    )
    p50_ms: float | None = Field(
        description="Median latency in ms, interpolated within its histogram bucket as "
        "Prometheus' `histogram_quantile` does; None without timed requests."
    )
    p95_ms: float | None = Field(description="95th-percentile latency in ms, likewise.")
    p99_ms: float | None = Field(description="99th-percentile latency in ms, likewise.")


class TrafficTotals(TrafficPoint):
    start: datetime = Field(description="Start of the span's first window (UTC).")
    requests_per_s: float = Field(description="`requests` over `seconds`.")
    seconds: float = Field(description="Seconds from `start` to now.")
    codes: dict[str, int] = Field(
        default_factory=dict,
        description="Error answers by error code (`invalid_input`, `unauthenticated`, "
        "`timeout`, ...), 4xx and 5xx alike.",
    )


class DeploymentTraffic(_Model):
    deployment: str = Field(description="Deployment name.")
    window_s: int = Field(description="Seconds each point covers.")
    points: list[TrafficPoint] = Field(
        description="One per window, oldest first, from the span's start (or the control "
        "plane's, if later) to the window still filling now; a window without requests is zeros."
    )
    totals: TrafficTotals = Field(description="The whole span at once.")
    replicas_reporting: int = Field(
        description="Replicas whose latest report falls in the span (a replica reports only "
        "when its counters changed, so an idle one is not counted)."
    )
    note: str = Field(description="Where the numbers come from and how long they are kept.")
