"""Jobs: training, script and evaluation specs, their states, metrics and logs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from lepton.enums import JobState
from lepton.schemas.common import _Model
from lepton.schemas.datasets import SplitSpec
from lepton.schemas.env import UserEnv, UserSecrets, _one_source_per_variable

TERMINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})


class _Resources(_Model):
    """What a job reserves where it runs (a Ray node, or this machine's GPUs)."""

    gpus: Annotated[int, Field(ge=0, le=16)] = Field(default=0, description="GPUs to use.")
    cpus: Annotated[float, Field(gt=0, le=256)] = Field(
        default=1,
        description="CPU cores the job needs; the Ray executor reserves them on a node, and its "
        "threads are capped to them.",
    )
    memory_mb: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] | None = Field(
        default=None,
        description="Memory the job needs, MiB; the Ray executor reserves it on a node, and the "
        "job's data segment is capped to it. None: the machine's default limit.",
    )


# A data-parallel job's worker count: each worker reserves the job's cpus, gpus and memory.
Workers = Annotated[
    int,
    Field(
        ge=1,
        le=64,
        description="Data-parallel workers: copies of the job that train together, each with "
        "the job's cpus, gpus and memory (the PyTorch nets, and scripts that use "
        "torch.distributed). 1: one process.",
    ),
]


class TrainSpec(_Resources):
    kind: Literal["train"] = Field(default="train", description="A built-in training job.")
    dataset: str = Field(description="Dataset reference, `name` or `name@vN`.")
    target: str | None = Field(default=None, description="Target column; the dataset's if absent.")
    algorithm: str = Field(default="auto", description="An algorithm name, or `auto` for AutoML.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Hyperparameters of the algorithm."
    )
    time_budget_s: Annotated[float, Field(gt=0, le=7 * 86400)] = Field(
        default=300, description="Wall-clock budget of the training, seconds."
    )
    seed: int = Field(default=0, description="Seed of the split and of the training.")
    split: SplitSpec = Field(default_factory=SplitSpec, description="How rows are split.")
    model: str | None = Field(
        default=None, description="Name to register the model under; the dataset's by default."
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2, description="Retries after the job's process dies."
    )
    workers: Workers = 1


class ScriptSpec(_Resources):
    kind: Literal["script"] = Field(default="script", description="The user's own script.")
    script_name: str = Field(max_length=256, description="File name of the script.")
    script_digest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Blob of the script (upload it first)."
    )
    dataset: str | None = Field(default=None, description="Dataset the script may read.")
    split: SplitSpec = Field(
        default_factory=SplitSpec,
        description="How `lepton.load_dataset(split=...)` divides the dataset's rows.",
    )
    args: list[str] = Field(default_factory=list, description="Command-line arguments.")
    env: UserEnv = Field(
        default_factory=dict,
        description="Environment variables the script gets (names other than `LEPTON_*`); not "
        "secrets: they are shown with the job.",
    )
    secrets: UserSecrets = Field(
        default_factory=list,
        description="Workspace secrets the script gets as variables: `NAME`, or `ENV=NAME` to "
        "name the variable; only names are stored, and the values are masked in the job's log.",
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=0, description="Retries after the job's process dies."
    )
    workers: Workers = 1

    @model_validator(mode="after")
    def _one_source(self) -> ScriptSpec:
        _one_source_per_variable(self.env, self.secrets)
        return self


class EvaluateSpec(_Resources):
    kind: Literal["evaluate"] = Field(default="evaluate", description="Evaluate a model version.")
    model: str = Field(
        max_length=140, description="Model reference: `name@N`, `@latest`, `@alias`."
    )
    dataset: str = Field(description="Dataset reference to evaluate on, `name@vN`.")
    target: str | None = Field(default=None, description="Target column; the model's if absent.")
    slices: list[str] = Field(
        default_factory=list, max_length=20, description="Columns to report metrics per value of."
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=1, description="Retries after the job's process dies."
    )


JobSpec = Annotated[TrainSpec | ScriptSpec | EvaluateSpec, Field(discriminator="kind")]


class JobCreate(_Model):
    spec: JobSpec = Field(description="What to run.")


class JobError(_Model):
    message: str = Field(description="What went wrong.")
    fix: str = Field(default="", description="How to fix it.")


class Job(_Model):
    id: str = Field(description="Job id.")
    kind: str = Field(description="`train` or `script`.")
    state: JobState = Field(description="Where the job is.")
    spec: JobSpec = Field(description="What was asked.")
    dataset_version: str | None = Field(description="`name@vN` the job reads, resolved at submit.")
    attempts: int = Field(description="Attempts started so far.")
    created_at: datetime = Field(description="Submitted (UTC).")
    started_at: datetime | None = Field(description="Last attempt started (UTC).")
    finished_at: datetime | None = Field(description="Finished (UTC).")
    error: JobError | None = Field(description="Why it failed, if it did.")
    result: dict[str, Any] | None = Field(description="Model version and test metrics.")
    environment: dict[str, str] | None = Field(description="Package versions the job ran with.")
    cancel_requested: bool = Field(description="A cancel was asked for.")


class MetricPoint(_Model):
    step: int = Field(description="Step (epoch, trial, ...).")
    name: str = Field(max_length=64, description="Metric name.")
    value: float = Field(description="Value.")


class MetricBatch(_Model):
    points: list[MetricPoint] = Field(max_length=10_000, description="Points to record.")
    batch: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="An id of this batch (32 hex digits): a batch sent again with the same id "
        "right after the first (an answer lost in a restart) is stored once.",
    )


class LogChunk(_Model):
    text: str = Field(description="Log text from `offset`.")
    offset: int = Field(description="Byte offset to ask from next time.")
    complete: bool = Field(description="True when the job ended and the log is whole.")


class JobStarted(_Model):
    environment: dict[str, str] = Field(description="Package versions.")


class Rendezvous(_Model):
    """Where the workers of one attempt of a data-parallel job meet (rank 0's store)."""

    attempt: Annotated[int, Field(ge=1)] = Field(description="The attempt it belongs to.")
    address: str = Field(
        max_length=280,
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
        description="`host:port` (`[v6]:port`) of rank 0's torch.distributed store.",
    )


class JobFinish(_Model):
    state: Literal["succeeded", "failed"] = Field(description="How it ended.")
    error: JobError | None = Field(default=None, description="Why, when failed.")
    result: dict[str, Any] | None = Field(default=None, description="Outputs.")
